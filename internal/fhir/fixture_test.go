package fhir_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"smartgate/internal/fhir"
	"smartgate/internal/fhir/devdata"
	"smartgate/internal/keys"
	"smartgate/internal/pgtest"
	"smartgate/internal/problem"
	"smartgate/internal/store/sqlstore"
	"smartgate/internal/token"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// fixture is a FHIR API on a real database (a SQLite file, or a database
// on the throwaway PostgreSQL cluster) with the demo data loaded, served
// over HTTP, and a token service to mint access tokens with any scopes.
type fixture struct {
	t      testing.TB
	srv    *httptest.Server
	base   string
	tokens *token.Service
	api    *fhir.API
}

const issuer = "https://ehr.example.org"

func newFixture(t testing.TB, backend string, mods ...func(*fhir.Deps)) *fixture {
	t.Helper()
	ctx := context.Background()
	dsn := filepath.Join(t.TempDir(), "fhir.db")
	if backend == "postgres" {
		dsn = pgtest.NewDatabase(t)
	}
	st, err := sqlstore.Open(ctx, dsn, sqlstore.Options{MaxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	kek, _ := keys.ParseKEK(keys.GenerateKEK(), "test")
	km := keys.New(st, keys.Options{JWKSMaxAge: time.Minute, MaxTokenLifetime: time.Hour, LoadKEK: func() (*keys.KEK, error) { return kek, nil }})
	if err := km.Init(ctx); err != nil {
		t.Fatal(err)
	}
	revs := token.NewRevocations(st, nil)
	tokens := token.New(km, revs, token.Options{Issuer: issuer, Audience: issuer + "/fhir"})
	deps := fhir.Deps{Store: st, Tokens: tokens, Base: issuer + "/fhir", Issuer: issuer, Software: "smartgate", Version: "test",
		OAuthURIs: [][2]string{{"token", issuer + "/oauth2/token"}}}
	for _, m := range mods {
		m(&deps)
	}
	api := fhir.New(deps)
	var rs []fhir.SeedResource
	for _, r := range devdata.Set() {
		rs = append(rs, fhir.SeedResource{Type: r.Type, ID: r.ID, Body: r.Body})
	}
	if err := api.Seed(ctx, rs, false); err != nil {
		t.Fatalf("seeding the demo data: %v", err)
	}
	wr := &problem.Writer{BaseURL: issuer}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := api.ServeFHIR(w, r); err != nil {
			wr.Write(w, r, problem.SurfaceFHIR, err)
		}
	}))
	t.Cleanup(srv.Close)
	return &fixture{t: t, srv: srv, base: srv.URL + "/fhir", tokens: tokens, api: api}
}

// token mints an access token with scope and an optional patient / fhirUser.
func (f *fixture) token(scope, patient, fhirUser string) string {
	f.t.Helper()
	tok, err := f.tokens.Issue(token.Claims{Subject: "u1", ClientID: "app", Scope: scope, Patient: patient, FHIRUser: fhirUser,
		Expiry: time.Now().Add(time.Hour).Unix(), Grant: "g1"})
	if err != nil {
		f.t.Fatal(err)
	}
	return tok
}

type response struct {
	status int
	header http.Header
	body   []byte
	json   map[string]any
}

// do sends one request; body may be nil, a string or []byte.
func (f *fixture) do(method, path, tok string, body any, headers ...string) response {
	f.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, f.base+path, rd)
	if err != nil {
		f.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	out := response{status: resp.StatusCode, header: resp.Header}
	out.body, _ = io.ReadAll(resp.Body)
	_ = json.Unmarshal(out.body, &out.json)
	return out
}

// ids lists the resource ids of a Bundle's entries with search mode "match"
// (or every entry when mode is "").
func (r response) ids(mode string) []string {
	var out []string
	entries, _ := r.json["entry"].([]any)
	for _, e := range entries {
		em, _ := e.(map[string]any)
		if mode != "" {
			s, _ := em["search"].(map[string]any)
			if s["mode"] != mode {
				continue
			}
		}
		res, _ := em["resource"].(map[string]any)
		if res != nil {
			out = append(out, res["resourceType"].(string)+"/"+res["id"].(string))
		}
	}
	return out
}
