package config

import (
	"strings"
	"testing"
)

// Lists of objects (federation.providers, federation.issuers) come from a
// YAML list in the file, or the same list as JSON in the environment; an
// unknown member is refused, naming the key.
func TestListOfObjects(t *testing.T) {
	file := writeYAML(t, "federation:\n  providers:\n    - id: kc\n      name: Keycloak\n      issuer: https://kc.example.org/realms/ehr\n    - id: other\n      issuer: https://idp.example.org\n")
	l, err := Load(Options{File: file})
	if err != nil {
		t.Fatal(err)
	}
	ps := l.Config.Federation.Providers
	if len(ps) != 2 || ps[0].ID != "kc" || ps[0].Name != "Keycloak" || ps[0].Issuer != "https://kc.example.org/realms/ehr" || ps[1].ID != "other" {
		t.Errorf("providers from the file: %+v", ps)
	}
	l, err = Load(Options{File: file, Env: []string{`SMARTGATE_FEDERATION_ISSUERS=[{"issuer":"https://as.example.org"}]`}})
	if err != nil {
		t.Fatal(err)
	}
	if is := l.Config.Federation.Issuers; len(is) != 1 || is[0].Issuer != "https://as.example.org" {
		t.Errorf("issuers from the environment: %+v", is)
	}
	_, err = Load(Options{Env: []string{`SMARTGATE_FEDERATION_PROVIDERS=[{"id":"kc","isuer":"https://x"}]`}})
	if err == nil || !strings.Contains(err.Error(), "SMARTGATE_FEDERATION_PROVIDERS") || !strings.Contains(err.Error(), "isuer") {
		t.Errorf("an unknown member: %v, want an error naming the variable and the member", err)
	}
}
