package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const configDoc = "../../docs/configuration.md"

// docRows returns the rows of the key table in docs/configuration.md, by
// dotted key: the cells of every table row whose first cell is a `code` span.
func docRows(t *testing.T) (text string, rows map[string][]string) {
	t.Helper()
	b, err := os.ReadFile(configDoc)
	if err != nil {
		t.Fatalf("reading %s: %v", configDoc, err)
	}
	text = string(b)
	rows = map[string][]string{}
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		if len(cells) < 6 || !strings.HasPrefix(cells[1], "`SMARTGATE_") {
			continue // another table (e.g. the validation rules)
		}
		rows[strings.Trim(cells[0], "`")] = cells
	}
	return text, rows
}

// TestDocsMentionEveryKey keeps docs/configuration.md in step with Config:
// every key and its environment variable must appear, with its own row in
// the key table giving the right environment variable and type.
func TestDocsMentionEveryKey(t *testing.T) {
	text, rows := docRows(t)
	for _, k := range AllKeys() {
		if !strings.Contains(text, "`"+k.Name+"`") {
			t.Errorf("%s does not mention key `%s`", configDoc, k.Name)
		}
		if !strings.Contains(text, k.Env) {
			t.Errorf("%s does not mention %s (key %s)", configDoc, k.Env, k.Name)
		}
		row, ok := rows[k.Name]
		if !ok {
			t.Errorf("%s: the key table has no row for `%s`", configDoc, k.Name)
			continue
		}
		if got, want := row[1], "`"+k.Env+"`"; got != want {
			t.Errorf("%s: row %s: environment column is %s, want %s", configDoc, k.Name, got, want)
		}
		if got, want := row[2], k.Type; got != want {
			t.Errorf("%s: row %s: type column is %q, want %q", configDoc, k.Name, got, want)
		}
	}
}

// TestDocsListNoStaleKeys fails when the key table documents a key that no
// longer exists.
func TestDocsListNoStaleKeys(t *testing.T) {
	_, rows := docRows(t)
	known := map[string]bool{}
	for _, k := range AllKeys() {
		known[k.Name] = true
	}
	for name := range rows {
		if !known[name] {
			t.Errorf("%s documents key `%s`, which Config does not have", configDoc, name)
		}
	}
}

// TestDocsDefaults checks the default column against Default() for every
// key with a non-zero default: the first `code` span of the cell must hold
// the same value.
func TestDocsDefaults(t *testing.T) {
	_, rows := docRows(t)
	def := reflect.ValueOf(Default())
	for _, k := range AllKeys() {
		row, ok := rows[k.Name]
		if !ok {
			continue // reported by TestDocsMentionEveryKey
		}
		v := fieldByKey(def, k.Name)
		if v.IsZero() {
			continue // derived, empty or false: the doc says it in words
		}
		cell := row[3]
		doc := firstCode(cell)
		var same bool // the documented value equals the default
		switch k.Type {
		case "duration":
			d, err := time.ParseDuration(doc)
			same = err == nil && d == time.Duration(v.Int())
		case "int":
			n, err := strconv.Atoi(doc)
			same = err == nil && int64(n) == v.Int()
		case "bool":
			b, err := strconv.ParseBool(doc)
			same = err == nil && b == v.Bool()
		case "string":
			same = doc == v.String()
		default:
			continue
		}
		if !same {
			want := v.Interface()
			if k.Type == "duration" {
				want = time.Duration(v.Int())
			}
			t.Errorf("%s: row %s: default column %q, want the value %v", configDoc, k.Name, cell, want)
		}
	}
}

func fieldByKey(v reflect.Value, name string) reflect.Value {
	for _, part := range strings.Split(name, ".") {
		for i := 0; i < v.NumField(); i++ {
			if strings.Split(v.Type().Field(i).Tag.Get("yaml"), ",")[0] == part {
				v = v.Field(i)
				break
			}
		}
	}
	return v
}

func firstCode(s string) string {
	_, rest, ok := strings.Cut(s, "`")
	if !ok {
		return ""
	}
	code, _, _ := strings.Cut(rest, "`")
	return code
}

func writeYAML(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "smartgate.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestLoadPrecedence: defaults < YAML file < SMARTGATE_* environment < flags,
// for each layer added in turn, and Sources names the winning layer.
func TestLoadPrecedence(t *testing.T) {
	file := writeYAML(t, "log:\n  level: warn\nchanges:\n  poll_interval: 750ms\n")
	env := []string{"SMARTGATE_LOG_LEVEL=error", "SMARTGATE_CHANGES_POLL_INTERVAL=500ms", "PATH=/usr/bin"}
	flags := map[string]string{"log.level": "debug", "changes.poll_interval": "250ms"}

	tests := []struct {
		name   string
		opts   Options
		level  string
		poll   time.Duration
		source Source
	}{
		{"defaults", Options{}, "info", time.Second, FromDefault},
		{"file over defaults", Options{File: file}, "warn", 750 * time.Millisecond, FromFile},
		{"env over file", Options{File: file, Env: env}, "error", 500 * time.Millisecond, FromEnv},
		{"flag over env", Options{File: file, Env: env, Flags: flags}, "debug", 250 * time.Millisecond, FromFlag},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := Load(tt.opts)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if l.Log.Level != tt.level {
				t.Errorf("log.level = %q, want %q", l.Log.Level, tt.level)
			}
			if got := l.Changes.PollInterval.D(); got != tt.poll {
				t.Errorf("changes.poll_interval = %s, want %s", got, tt.poll)
			}
			for _, k := range []string{"log.level", "changes.poll_interval"} {
				if got := l.Sources[k]; got != tt.source {
					t.Errorf("Sources[%s] = %s, want %s", k, got, tt.source)
				}
			}
			// A key no layer sets keeps its default.
			if got, want := l.Audit.BatchSize, Default().Audit.BatchSize; got != want {
				t.Errorf("audit.batch_size = %d, want the default %d", got, want)
			}
		})
	}
}

func TestLoadRejectsUnknownYAMLKey(t *testing.T) {
	file := writeYAML(t, "issuer: https://ehr.example.org\nlog:\n  levle: debug\n")
	_, err := Load(Options{File: file})
	if err == nil {
		t.Fatal("Load accepted a file with the unknown key log.levle")
	}
	for _, want := range []string{"levle", "docs/configuration.md"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
}

func TestLoadBadEnvValueNamesVariable(t *testing.T) {
	_, err := Load(Options{Env: []string{"SMARTGATE_SHUTDOWN_TIMEOUT=soon", "SMARTGATE_AUDIT_BATCH_SIZE=many"}})
	if err == nil {
		t.Fatal("Load accepted unparseable values")
	}
	for _, want := range []string{"SMARTGATE_SHUTDOWN_TIMEOUT", "SMARTGATE_AUDIT_BATCH_SIZE"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}

// problemKeys loads opts, validates with validate, and returns the keys of
// the problems found (sorted; nil when valid).
func problemKeys(t *testing.T, opts Options, validate func(*Config) error) ([]string, *ValidationError) {
	t.Helper()
	l, err := Load(opts)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	err = validate(&l.Config)
	if err == nil {
		return nil, nil
	}
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("Validate returned %T (%v), want *ValidationError", err, err)
	}
	var keys []string
	for _, p := range ve.Problems {
		keys = append(keys, p.Key)
	}
	sort.Strings(keys)
	return keys, ve
}

func TestValidateListsEveryProblem(t *testing.T) {
	file := writeYAML(t, "issuer: http://ehr.example.org\nlog:\n  level: verbose\nshutdown_timeout: -5s\n")
	keys, ve := problemKeys(t, Options{File: file}, (*Config).Validate)
	want := []string{"issuer", "log.level", "shutdown_timeout"}
	if diff := cmp.Diff(want, keys); diff != "" {
		t.Fatalf("problem keys (-want +got):\n%s\nerror: %v", diff, ve)
	}
	msg := ve.Error()
	for _, want := range []string{"3 problem(s)", "issuer:", "log.level:", "shutdown_timeout:", "verbose", "-5s"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error message does not contain %q:\n%s", want, msg)
		}
	}
	for _, p := range ve.Problems {
		if got, want := p.Insecure, p.Key == "issuer"; got != want {
			t.Errorf("problem %q: Insecure = %v, want %v", p, got, want)
		}
	}
}

func TestValidateIssuer(t *testing.T) {
	tests := []struct {
		name string
		env  []string
		want []string // problem keys
	}{
		{"missing", nil, []string{"issuer"}},
		{"https without TLS or proxy", []string{"SMARTGATE_ISSUER=https://ehr.example.org"}, []string{"issuer"}},
		{"https with TLS", []string{"SMARTGATE_ISSUER=https://ehr.example.org", "SMARTGATE_TLS_CERT_FILE=c.pem", "SMARTGATE_TLS_KEY_FILE=k.pem"}, nil},
		{"https behind a proxy", []string{"SMARTGATE_ISSUER=https://ehr.example.org", "SMARTGATE_TRUSTED_PROXIES=10.0.0.5,10.1.0.0/16"}, nil},
		{"http on loopback", []string{"SMARTGATE_ISSUER=http://127.0.0.1:8080"}, nil},
		{"http on localhost", []string{"SMARTGATE_ISSUER=http://localhost:8080"}, nil},
		{"http elsewhere", []string{"SMARTGATE_ISSUER=http://ehr.example.org"}, []string{"issuer"}},
		{"query", []string{"SMARTGATE_ISSUER=https://ehr.example.org/?x=1", "SMARTGATE_TRUSTED_PROXIES=10.0.0.5"}, []string{"issuer"}},
		{"bad proxy", []string{"SMARTGATE_ISSUER=https://ehr.example.org", "SMARTGATE_TRUSTED_PROXIES=proxy.local"}, []string{"trusted_proxies"}},
		{"cert without key", []string{"SMARTGATE_ISSUER=https://ehr.example.org", "SMARTGATE_TLS_CERT_FILE=c.pem"}, []string{"tls.cert_file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keys, ve := problemKeys(t, Options{Env: tt.env}, (*Config).Validate)
			if diff := cmp.Diff(tt.want, keys); diff != "" {
				t.Errorf("env %v: problem keys (-want +got):\n%s\nerror: %v", tt.env, diff, ve)
			}
		})
	}
}

func TestDevModeRefusesNonLoopbackListen(t *testing.T) {
	keys, ve := problemKeys(t, Options{Flags: map[string]string{"dev": "true", "listen": "0.0.0.0:8080"}}, (*Config).Validate)
	if diff := cmp.Diff([]string{"listen"}, keys); diff != "" {
		t.Fatalf("problem keys (-want +got):\n%s\nerror: %v", diff, ve)
	}
	if !strings.Contains(ve.Error(), "loopback") {
		t.Errorf("error does not explain the loopback rule: %v", ve)
	}

	// The loopback forms are accepted, and the issuer follows the address.
	for _, listen := range []string{"127.0.0.1:9000", "localhost:9000", "[::1]:9000"} {
		l, err := Load(Options{Flags: map[string]string{"dev": "true", "listen": listen}})
		if err != nil {
			t.Fatalf("Load: %v", err)
		}
		if err := l.Validate(); err != nil {
			t.Errorf("dev mode with --listen %s: %v", listen, err)
		}
		if want := "http://" + listen; l.Issuer != want {
			t.Errorf("dev mode with --listen %s: issuer %q, want %q", listen, l.Issuer, want)
		}
	}
}

func TestDevModeDefaults(t *testing.T) {
	l, err := Load(Options{Flags: map[string]string{"dev": "true"}})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	got := map[string]string{"listen": l.Listen, "issuer": l.Issuer, "database": l.Database, "kek_file": l.KEKFile}
	want := map[string]string{
		"listen":   "127.0.0.1:8080",
		"issuer":   "http://127.0.0.1:8080",
		"database": filepath.Join("smartgate-data", "smartgate.db"),
		"kek_file": filepath.Join("smartgate-data", "kek"),
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("dev defaults (-want +got):\n%s", diff)
	}
	if err := l.Validate(); err != nil {
		t.Errorf("dev defaults do not validate: %v", err)
	}
}

func TestKEKAndKEKFileExclusive(t *testing.T) {
	file := writeYAML(t, "kek_file: /etc/smartgate/kek\n")
	keys, ve := problemKeys(t, Options{File: file, Env: []string{"SMARTGATE_KEK=AAAA"}}, (*Config).ValidateData)
	if diff := cmp.Diff([]string{"kek"}, keys); diff != "" {
		t.Errorf("problem keys (-want +got):\n%s\nerror: %v", diff, ve)
	}
	// Clearing kek_file in the environment lets SMARTGATE_KEK win.
	keys, ve = problemKeys(t, Options{File: file, Env: []string{"SMARTGATE_KEK=AAAA", "SMARTGATE_KEK_FILE="}}, (*Config).ValidateData)
	if keys != nil {
		t.Errorf("with SMARTGATE_KEK_FILE cleared: problems %v: %v", keys, ve)
	}
}

func TestDurationRules(t *testing.T) {
	tests := []struct {
		env  []string
		want []string
	}{
		{[]string{"SMARTGATE_CHANGES_POLL_INTERVAL=2s", "SMARTGATE_CHANGES_STALE_AFTER=10s"}, []string{"changes.poll_interval"}},
		{[]string{"SMARTGATE_CHANGES_STALE_AFTER=1s"}, []string{"changes.stale_after"}},
		{[]string{"SMARTGATE_KEYS_JWKS_MAX_AGE=0s"}, []string{"keys.jwks_max_age"}},
		{[]string{"SMARTGATE_AUDIT_BATCH_SIZE=100", "SMARTGATE_AUDIT_QUEUE_SIZE=10"}, []string{"audit.queue_size"}},
		{[]string{"SMARTGATE_DATABASE_MAX_CONNS=0"}, []string{"database_max_conns"}},
	}
	for _, tt := range tests {
		keys, ve := problemKeys(t, Options{Env: tt.env}, (*Config).ValidateData)
		if diff := cmp.Diff(tt.want, keys); diff != "" {
			t.Errorf("env %v: problem keys (-want +got):\n%s\nerror: %v", tt.env, diff, ve)
		}
	}
}

// TestValidateDataIgnoresServingProblems: key, migrate and the like run on a
// configuration with no issuer (or a bad listen/TLS/proxy setting), but
// still report problems with the data settings.
func TestValidateDataIgnoresServingProblems(t *testing.T) {
	file := writeYAML(t, "issuer: http://ehr.example.org\nlisten: nonsense\ntrusted_proxies: [proxy.local]\ntls:\n  cert_file: c.pem\n")
	keys, ve := problemKeys(t, Options{File: file}, (*Config).Validate)
	if diff := cmp.Diff([]string{"issuer", "listen", "tls.cert_file", "trusted_proxies"}, keys); diff != "" {
		t.Errorf("Validate: problem keys (-want +got):\n%s\nerror: %v", diff, ve)
	}
	keys, ve = problemKeys(t, Options{File: file}, (*Config).ValidateData)
	if keys != nil {
		t.Errorf("ValidateData reported serving problems %v: %v", keys, ve)
	}
	// No issuer at all is fine for data commands too.
	if keys, ve := problemKeys(t, Options{}, (*Config).ValidateData); keys != nil {
		t.Errorf("ValidateData with no issuer: %v: %v", keys, ve)
	}
	// A data problem is still reported.
	keys, ve = problemKeys(t, Options{File: file, Env: []string{"SMARTGATE_LOG_FORMAT=xml"}}, (*Config).ValidateData)
	if diff := cmp.Diff([]string{"log.format"}, keys); diff != "" {
		t.Errorf("ValidateData: problem keys (-want +got):\n%s\nerror: %v", diff, ve)
	}
}
