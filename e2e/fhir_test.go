package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"smartgate/internal/fhir/devdata"
	"smartgate/internal/fhir/spec"
)

// TestFHIRBackendService drives the FHIR API of `serve --dev` as a SMART
// Backend Services client would: discovery through /fhir/metadata, a
// system/*.rs token from golang.org/x/oauth2 with a go-jose client
// assertion, reads and searches of the demo data, a refused write, a
// revoked token, and the CORS headers browsers need.
func TestFHIRBackendService(t *testing.T) {
	t.Parallel()
	s := startDev(t)
	fhirBase := s.URL + "/fhir"

	// The CapabilityStatement needs no token.
	r := do(t, http.MethodGet, fhirBase+"/metadata", nil, http.Header{"Accept": {"application/fhir+json"}})
	var cs struct {
		ResourceType string `json:"resourceType"`
		FHIRVersion  string `json:"fhirVersion"`
		Kind         string `json:"kind"`
		Rest         []struct {
			Mode     string `json:"mode"`
			Security struct {
				Extension []struct {
					URL       string `json:"url"`
					Extension []struct {
						URL      string `json:"url"`
						ValueURI string `json:"valueUri"`
					} `json:"extension"`
				} `json:"extension"`
			} `json:"security"`
			Resource []struct {
				Type        string `json:"type"`
				Interaction []struct {
					Code string `json:"code"`
				} `json:"interaction"`
			} `json:"resource"`
		} `json:"rest"`
	}
	if r.status != http.StatusOK {
		t.Fatalf("GET /fhir/metadata without a token: %s", r)
	}
	r.json(t, &cs)
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/fhir+json") {
		t.Errorf("metadata Content-Type %q", ct)
	}
	if cs.ResourceType != "CapabilityStatement" || cs.FHIRVersion != "4.0.1" || cs.Kind != "instance" || len(cs.Rest) != 1 || cs.Rest[0].Mode != "server" {
		t.Fatalf("metadata: resourceType %q fhirVersion %q kind %q, %d rest", cs.ResourceType, cs.FHIRVersion, cs.Kind, len(cs.Rest))
	}
	uris := map[string]string{}
	for _, e := range cs.Rest[0].Security.Extension {
		if e.URL == "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris" {
			for _, x := range e.Extension {
				uris[x.URL] = x.ValueURI
			}
		}
	}
	if uris["token"] != s.tokenURL() || uris["revoke"] != s.URL+"/oauth2/revoke" {
		t.Errorf("SMART oauth-uris extension: %v; want token %s and revoke %s/oauth2/revoke", uris, s.tokenURL(), s.URL)
	}
	var served []string
	for _, res := range cs.Rest[0].Resource {
		served = append(served, res.Type)
		var codes []string
		for _, in := range res.Interaction {
			codes = append(codes, in.Code)
		}
		for _, want := range []string{"read", "search-type"} {
			if !slices.Contains(codes, want) {
				t.Errorf("metadata: %s lacks the %s interaction (%v)", res.Type, want, codes)
			}
		}
	}
	slices.Sort(served)
	if !slices.Equal(served, spec.Types()) {
		t.Errorf("metadata lists %v, want every served type %v", served, spec.Types())
	}

	// A backend client registered with system/*.rs authenticates with a
	// go-jose assertion through golang.org/x/oauth2.
	key := newRSAKey(t, "fhir-backend-1", jose.RS384)
	c := s.createClient(t, "fhir backend", "--type", "confidential-asymmetric", "--jwks-file", writeJWKSFile(t, key), "--scope", "system/*.rs")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := &clientcredentials.Config{
		ClientID: c.ClientID, TokenURL: s.tokenURL(), Scopes: []string{"system/*.rs"}, AuthStyle: oauth2.AuthStyleInParams,
		EndpointParams: url.Values{
			"client_assertion_type": {assertionType},
			"client_assertion":      {key.sign(t, assertionClaims(c.ClientID, s.tokenURL()), nil)},
		},
	}
	tok, err := cfg.Token(ctx)
	if err != nil {
		t.Fatalf("client_credentials with a client assertion: %v", err)
	}
	if tok.Extra("scope") != "system/*.rs" {
		t.Errorf("granted scope %v, want system/*.rs", tok.Extra("scope"))
	}
	fhirc := oauth2.NewClient(ctx, oauth2.StaticTokenSource(tok))
	fhirc.Timeout = 10 * time.Second
	get := func(path string, header ...string) (int, http.Header, map[string]any) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, fhirBase+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := fhirc.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, resp.Header, m
	}
	entries := func(m map[string]any) []map[string]any {
		var out []map[string]any
		es, _ := m["entry"].([]any)
		for _, e := range es {
			res, _ := e.(map[string]any)["resource"].(map[string]any)
			out = append(out, res)
		}
		return out
	}

	status, h, bundle := get("/Patient", "Origin", "https://app.example.com")
	total, _ := bundle["total"].(float64)
	if status != http.StatusOK || bundle["type"] != "searchset" || total < 5 {
		t.Fatalf("GET /fhir/Patient: %d, type %v, total %v; want the demo patients (at least 5)", status, bundle["type"], bundle["total"])
	}
	var ids []string
	for _, p := range entries(bundle) {
		ids = append(ids, p["id"].(string))
	}
	for _, want := range devdata.Patients() {
		if !slices.Contains(ids, want) {
			t.Errorf("GET /fhir/Patient: demo patient %s missing from %v", want, ids)
		}
	}
	// CORS on a FHIR response: any origin, and the headers apps read.
	if h.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("FHIR response Access-Control-Allow-Origin %q, want *", h.Get("Access-Control-Allow-Origin"))
	}
	expose := h.Get("Access-Control-Expose-Headers")
	for _, want := range []string{"Location", "ETag"} {
		if !slices.Contains(strings.Split(strings.ReplaceAll(expose, " ", ""), ","), want) {
			t.Errorf("Access-Control-Expose-Headers %q lacks %s", expose, want)
		}
	}

	patient := devdata.Patients()[0]
	status, _, bundle = get("/Observation?patient=" + patient + "&category=laboratory")
	labs := entries(bundle)
	if status != http.StatusOK || len(labs) == 0 {
		t.Fatalf("Observation?patient=%s&category=laboratory: %d, %d entries", patient, status, len(labs))
	}
	if total, _ := bundle["total"].(float64); int(total) != len(labs) {
		t.Errorf("Observation search: total %v, %d entries", bundle["total"], len(labs))
	}
	for _, o := range labs {
		subj, _ := o["subject"].(map[string]any)
		b, _ := json.Marshal(o["category"])
		if subj["reference"] != "Patient/"+patient || !strings.Contains(string(b), `"laboratory"`) {
			t.Errorf("Observation/%v: subject %v, category %s", o["id"], subj["reference"], b)
		}
	}

	// A write is outside system/*.rs.
	obs := `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/` + patient + `"}}`
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, fhirBase+"/Observation", strings.NewReader(obs))
	req.Header.Set("Content-Type", "application/fhir+json")
	resp, err := fhirc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if wa := resp.Header.Get("WWW-Authenticate"); resp.StatusCode != http.StatusForbidden || !strings.Contains(wa, `error="insufficient_scope"`) || !strings.Contains(wa, `scope="system/Observation.c"`) {
		t.Errorf("POST /fhir/Observation under system/*.rs: %d %q, want 403 insufficient_scope naming system/Observation.c", resp.StatusCode, wa)
	}
	if status, _, _ := get("/Observation?patient=" + patient + "&_summary=count"); status != 200 {
		t.Errorf("the token stopped working after a refused write: %d", status)
	}

	// No token: a bare challenge.
	r = do(t, http.MethodGet, fhirBase+"/Patient", nil, nil)
	if r.status != http.StatusUnauthorized || r.header.Get("WWW-Authenticate") != `Bearer realm="`+fhirBase+`"` {
		t.Errorf("GET /fhir/Patient without a token: %d %q", r.status, r.header.Get("WWW-Authenticate"))
	}

	// A preflight for a write from a browser app.
	r = do(t, http.MethodOptions, fhirBase+"/Observation", nil, http.Header{
		"Origin": {"https://app.example.com"}, "Access-Control-Request-Method": {"POST"}, "Access-Control-Request-Headers": {"authorization, content-type"},
	})
	if r.status != http.StatusNoContent || r.header.Get("Access-Control-Allow-Origin") != "*" ||
		!strings.Contains(r.header.Get("Access-Control-Allow-Methods"), "POST") || !strings.Contains(r.header.Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Errorf("preflight of POST /fhir/Observation: %d %v", r.status, r.header)
	}

	// Revoked by its client, the token is refused with the reason.
	rr := postForm(t, s.URL+"/oauth2/revoke", url.Values{"token": {tok.AccessToken}}, assertCreds(t, c.ClientID, s.tokenURL(), key))
	if rr.status != http.StatusOK {
		t.Fatalf("revocation: %s", rr)
	}
	waitFor(t, revocationWait, "revoked token refused by /fhir", func() (bool, string) {
		r := do(t, http.MethodGet, fhirBase+"/Patient", nil, http.Header{"Authorization": {"Bearer " + tok.AccessToken}})
		wa := r.header.Get("WWW-Authenticate")
		return r.status == http.StatusUnauthorized && strings.Contains(wa, `error="invalid_token"`) && strings.Contains(wa, "revoked"), r.String() + " " + wa
	})
}
