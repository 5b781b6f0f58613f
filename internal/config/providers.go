package config

// Provider is one upstream OpenID Connect provider users may sign in
// through (federation.providers).
type Provider struct {
	ID     string `yaml:"id"`
	Name   string `yaml:"name"`
	Issuer string `yaml:"issuer"`
}

// validateProviders checks federation.providers; add reports a problem.
func (c *Config) validateProviders(add func(key, format string, args ...any)) {}
