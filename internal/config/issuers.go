package config

// ExternalIssuer is one authorization server whose access tokens the FHIR
// API accepts (federation.issuers).
type ExternalIssuer struct {
	Issuer string `yaml:"issuer"`
}

// validateIssuers checks federation.issuers; add reports a problem.
func (c *Config) validateIssuers(add func(key, format string, args ...any)) {}
