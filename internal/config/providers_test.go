package config

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// writeKey writes key as a PEM file of the given block type.
func writeKey(t *testing.T, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadPrivateKey(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecDER, _ := x509.MarshalECPrivateKey(ec)
	p8, _ := x509.MarshalPKCS8PrivateKey(ec)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	edDER, _ := x509.MarshalPKCS8PrivateKey(ed)
	ec521, _ := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	ec521DER, _ := x509.MarshalECPrivateKey(ec521)
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	tests := []struct {
		name, typ string
		der       []byte
		wantErr   string
	}{
		{"EC SEC 1", "EC PRIVATE KEY", ecDER, ""},
		{"EC PKCS #8", "PRIVATE KEY", p8, ""},
		{"Ed25519", "PRIVATE KEY", edDER, ""},
		{"P-521", "EC PRIVATE KEY", ec521DER, "P-521"},
		{"RSA 1024", "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(small), "1024 bits"},
		{"certificate only", "CERTIFICATE", []byte{1, 2, 3}, "no PEM private key"},
		{"garbage", "PRIVATE KEY", []byte{1, 2, 3}, "does not parse"},
	}
	for _, tt := range tests {
		_, err := LoadPrivateKey(writeKey(t, tt.typ, tt.der))
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("%s: error %v, want one containing %q", tt.name, err, tt.wantErr)
		}
	}
}

// TestValidateProviders: every member is checked, each problem names
// federation.providers[N].member and the provider's id.
func TestValidateProviders(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecDER, _ := x509.MarshalECPrivateKey(ec)
	keyFile := writeKey(t, "EC PRIVATE KEY", ecDER)
	good := `{"id":"kc","issuer":"https://kc.example.org/realms/ehr","client_id":"smartgate","client_secret":"s3cret"}`
	tests := []struct {
		name string
		json string
		want []string // problem keys
		say  []string // words the messages must hold
	}{
		{"minimal", `[` + good + `]`, nil, nil},
		{"full", `[{"id":"kc","name":"Hospital login","issuer":"http://127.0.0.1:8081/realms/ehr","client_id":"smartgate","private_key_file":"` + keyFile + `","private_key_id":"k1",
			"scopes":["openid","email","profile","groups"],"claims":{"email":"mail","fhir_user":"fhir_user","groups":"groups","group_roles":{"/clinicians":"practitioner","/admins":"admin"}},
			"match_claim":"email","provisioning":{"enabled":true,"email_domains":["example.org"],"role":"practitioner"},"trust_roles":true,"allow_private":true}]`, nil, nil},
		{"missing everything", `[{}]`, []string{"federation.providers[0].client_id", "federation.providers[0].client_secret", "federation.providers[0].id", "federation.providers[0].issuer"}, []string{"provider #0", "client_secret", "private_key_file"}},
		{"bad id and duplicate", `[` + good + `,` + strings.Replace(good, `"kc"`, `"Key Cloak"`, 1) + `,` + good + `]`,
			[]string{"federation.providers[1].id", "federation.providers[2].id"}, []string{"Key Cloak", "federation.providers[0]"}},
		{"http issuer", `[` + strings.Replace(good, "https://", "http://", 1) + `]`, []string{"federation.providers[0].issuer"}, []string{"allow_private"}},
		{"issuer with query", `[` + strings.Replace(good, "/realms/ehr", "/realms/ehr?x=1", 1) + `]`, []string{"federation.providers[0].issuer"}, []string{"query"}},
		{"secret and key", `[` + strings.Replace(good, `"client_secret"`, `"private_key_file":"`+keyFile+`","client_secret"`, 1) + `]`, []string{"federation.providers[0].client_secret"}, []string{"keep one"}},
		{"key file missing", `[` + strings.Replace(good, `"client_secret":"s3cret"`, `"private_key_file":"/nonexistent/key.pem"`, 1) + `]`, []string{"federation.providers[0].private_key_file"}, []string{"/nonexistent/key.pem"}},
		{"scopes without openid", `[` + strings.Replace(good, `"client_id"`, `"scopes":["email","a b"],"client_id"`, 1) + `]`,
			[]string{"federation.providers[0].scopes", "federation.providers[0].scopes"}, []string{"openid", `"a b"`}},
		{"bad roles", `[` + strings.Replace(good, `"client_id"`, `"claims":{"group_roles":{"x":"superuser"}},"trust_roles":true,"provisioning":{"role":"admin"},"client_id"`, 1) + `]`,
			[]string{"federation.providers[0].claims.group_roles", "federation.providers[0].claims.group_roles", "federation.providers[0].provisioning.role", "federation.providers[0].trust_roles"},
			[]string{"superuser", "never makes administrators"}},
		{"bad match and domains", `[` + strings.Replace(good, `"client_id"`, `"match_claim":"username","provisioning":{"enabled":true},"client_id"`, 1) + `]`,
			[]string{"federation.providers[0].match_claim", "federation.providers[0].provisioning.email_domains"}, []string{"username", "no email domain"}},
		{"bad domain and claim", `[` + strings.Replace(good, `"client_id"`, `"claims":{"role":".roles"},"provisioning":{"email_domains":["Example.org"]},"client_id"`, 1) + `]`,
			[]string{"federation.providers[0].claims.role", "federation.providers[0].provisioning.email_domains"}, []string{"Example.org", ".roles"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keys, ve := problemKeys(t, Options{Env: []string{"SMARTGATE_FEDERATION_PROVIDERS=" + tt.json}}, (*Config).ValidateData)
			if diff := cmp.Diff(tt.want, keys); diff != "" {
				t.Fatalf("problem keys (-want +got):\n%s\nerror: %v", diff, ve)
			}
			for _, w := range tt.say {
				if !strings.Contains(ve.Error(), w) {
					t.Errorf("the problems do not say %q:\n%v", w, ve)
				}
			}
		})
	}
}

// TestProviderDefaults: the documented defaults of the members.
func TestProviderDefaults(t *testing.T) {
	file := writeYAML(t, "federation:\n  providers:\n    - id: kc\n      issuer: https://kc.example.org\n      client_id: c\n      client_secret: s\n")
	l, err := Load(Options{File: file})
	if err != nil {
		t.Fatal(err)
	}
	p, ok := l.ProviderByID("kc")
	if !ok {
		t.Fatal("ProviderByID(kc) found nothing")
	}
	got := map[string]any{"name": p.DisplayName(), "scopes": p.ScopeList(), "email": p.EmailClaim(), "email_verified": p.EmailVerifiedClaim(),
		"fhir_user": p.FHIRUserClaim(), "match": p.Match(), "role": p.ProvisionRole(), "provisioning": p.Provisioning.Enabled, "trust_roles": p.TrustRoles, "allow_private": p.AllowPrivate}
	want := map[string]any{"name": "kc", "scopes": []string{"openid", "email", "profile"}, "email": "email", "email_verified": "email_verified",
		"fhir_user": "fhirUser", "match": "none", "role": "patient", "provisioning": false, "trust_roles": false, "allow_private": false}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
	if _, ok := l.ProviderByID("other"); ok {
		t.Error("ProviderByID(other) found a provider")
	}
}
