package config

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoad feeds arbitrary YAML files and environment values through Load
// and Validate: they must return errors, never panic.
func FuzzLoad(f *testing.F) {
	f.Add("issuer: https://ehr.example.org\ntls:\n  cert_file: a\n  key_file: b\n", "SMARTGATE_LOG_LEVEL=debug")
	f.Add("dev: true\nlisten: 127.0.0.1:0\n", "SMARTGATE_CHANGES_POLL_INTERVAL=250ms")
	f.Add("keys: {jwks_max_age: 1h}\ntrusted_proxies: [10.0.0.0/8, '::1']\n", "SMARTGATE_TRUSTED_PROXIES=1.2.3.4,5.6.7.8")
	f.Add("- a list\n", "SMARTGATE_DEV=maybe")
	f.Add("audit: {batch_size: -1}\n", "SMARTGATE_AUDIT_BATCH_SIZE=x")
	f.Add("", "SMARTGATE_SHUTDOWN_TIMEOUT=-5s")
	f.Fuzz(func(t *testing.T, yamlText, env string) {
		path := filepath.Join(t.TempDir(), "c.yaml")
		if err := os.WriteFile(path, []byte(yamlText), 0o600); err != nil {
			t.Fatal(err)
		}
		l, err := Load(Options{File: path, Env: []string{env}})
		if err != nil {
			return
		}
		_ = l.Validate()
		_ = l.ValidateData()
		_ = l.RedactedDatabase()
	})
}
