package config

// Federation connects smartgate to other OpenID Connect / OAuth servers in
// both directions (issue 7): users sign in through upstream providers
// (Providers), and the FHIR API accepts access tokens from trusted
// external issuers (Issuers). Both are lists of objects, so they are set
// in the YAML file only (no environment variable or flag).
type Federation struct {
	Providers []Provider       `yaml:"providers"`
	Issuers   []ExternalIssuer `yaml:"issuers"`
}
