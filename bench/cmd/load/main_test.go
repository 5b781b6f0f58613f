package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestLoopbackOnly(t *testing.T) {
	for _, h := range []string{"127.0.0.1", "127.1.2.3", "::1"} {
		if err := loopbackOnly(h); err != nil {
			t.Errorf("loopbackOnly(%q) = %v, want nil", h, err)
		}
	}
	for _, h := range []string{"10.0.0.1", "192.168.1.1", "8.8.8.8", "::ffff:10.0.0.1", "0.0.0.0"} {
		if err := loopbackOnly(h); err == nil {
			t.Errorf("loopbackOnly(%q) = nil, want a refusal", h)
		}
	}
}

func TestValidateRefusesNonLoopbackURL(t *testing.T) {
	o := options{url: "http://10.1.2.3:8080/oauth2/token", mode: "cc-secret", c: 16, d: time.Second, auth: "basic", clientID: "a", secret: "b"}
	if err := o.validate(); err == nil {
		t.Fatal("validate accepted a non-loopback URL")
	}
}

func TestQuantile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	if got := quantile(d, 0.5); got != 50*time.Millisecond {
		t.Errorf("p50 = %s, want 50ms", got)
	}
	if got := quantile(d, 0.99); got != 99*time.Millisecond {
		t.Errorf("p99 = %s, want 99ms", got)
	}
	if got := quantile(d[:1], 0.99); got != time.Millisecond {
		t.Errorf("p99 of one = %s, want 1ms", got)
	}
}

func TestProcReaders(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc here")
	}
	if _, err := procCPU(os.Getpid()); err != nil {
		t.Errorf("procCPU: %v", err)
	}
	if rss, err := procRSS(os.Getpid()); err != nil || rss <= 0 {
		t.Errorf("procRSS = %d, %v", rss, err)
	}
	if _, _, err := machineCPU(); err != nil {
		t.Errorf("machineCPU: %v", err)
	}
}

func TestCheckBody(t *testing.T) {
	for _, tc := range []struct {
		mode, body string
		ok         bool
	}{
		{"cc-secret", `{"access_token":"eyJ.x.y","token_type":"Bearer"}`, true},
		{"cc-secret", `{ "token_type": "Bearer", "access_token" : "ory_at_1" }`, true},
		{"cc-secret", `{"access_token":""}`, false},
		{"cc-secret", `{"error":"invalid_client","error_description":"no \"access_token\" here"}`, false},
		{"cc-secret", `{"access_token":null}`, false},
		{"introspect", `{"active":true,"scope":"system/Patient.rs"}`, true},
		{"introspect", `{"scope":"x", "active": true}`, true},
		{"introspect", `{"active":false}`, false},
		{"introspect", `{}`, false},
	} {
		if err := checkBody(tc.mode, []byte(tc.body)); (err == nil) != tc.ok {
			t.Errorf("checkBody(%s, %s) = %v, want ok=%v", tc.mode, tc.body, err, tc.ok)
		}
	}
}

func TestFixedForm(t *testing.T) {
	for _, tc := range []struct {
		o     options
		want  string
		basic bool
	}{
		{options{mode: "cc-secret", auth: "basic", scope: "system/Patient.rs"}, "grant_type=client_credentials&scope=system%2FPatient.rs", true},
		{options{mode: "cc-secret", auth: "post", clientID: "a b", secret: "s&t"}, "client_id=a+b&client_secret=s%26t&grant_type=client_credentials", false},
		{options{mode: "cc-jwt-rs384", scope: "system/Patient.rs"}, "client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&grant_type=client_credentials&scope=system%2FPatient.rs", false},
		{options{mode: "introspect", auth: "basic", clientID: "rs", secret: "x"}, "", true},
		{options{mode: "introspect", auth: "basic"}, "", false},
	} {
		got, basic := tc.o.fixedForm()
		if got != tc.want || basic != tc.basic {
			t.Errorf("fixedForm(%+v) = %q, %v; want %q, %v", tc.o, got, basic, tc.want, tc.basic)
		}
	}
}

// TestRawSender drives the raw client against net/http's server: Basic
// credentials (form-urlencoded first, RFC 6749 §2.3.1), the body, keep-alive, a chunked answer, and a server that
// closes the connection after an answer.
func TestRawSender(t *testing.T) {
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, secret, _ := r.BasicAuth()
		_ = r.ParseForm()
		switch r.PostForm.Get("n") {
		case "chunked":
			w.Write([]byte(`{"access_token":`))
			w.(http.Flusher).Flush()
			w.Write([]byte(`"c"}`))
		case "close":
			w.Header().Set("Connection", "close")
			fmt.Fprintf(w, `{"access_token":"x"}`)
		default:
			fmt.Fprintf(w, `{"id":%q,"secret":%q,"n":%q,"method":%q}`, id, secret, r.PostForm.Get("n"), r.Method)
		}
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	o := options{url: srv.URL + "/oauth2/token", mode: "cc-secret", c: 1, client: "raw", auth: "basic", clientID: "bench client", secret: "s:e/cret", timeout: 5 * time.Second}
	sd := o.newSenders()[0]
	defer sd.close()
	for i, tc := range []struct{ body, want string }{
		{"n=1", `{"id":"bench+client","secret":"s%3Ae%2Fcret","n":"1","method":"POST"}`},
		{"n=2", `{"id":"bench+client","secret":"s%3Ae%2Fcret","n":"2","method":"POST"}`},
		{"n=chunked", `{"access_token":"c"}`},
		{"n=close", `{"access_token":"x"}`},
		{"n=3", `{"id":"bench+client","secret":"s%3Ae%2Fcret","n":"3","method":"POST"}`},
	} {
		status, body, err := sd.send(tc.body, true)
		if err != nil || status != 200 || string(body) != tc.want {
			t.Errorf("send %d (%s) = %d, %s, %v; want 200, %s", i, tc.body, status, body, err, tc.want)
		}
	}
	if n := conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2 (keep-alive, then a new one after the server closed)", n)
	}
}

func TestS256(t *testing.T) {
	// RFC 7636 appendix B.
	if got := s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"); got != "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM" {
		t.Errorf("s256 = %s, want RFC 7636's E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", got)
	}
}

func TestJSONStringValue(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{`{"access_token":"a","refresh_token":"ory_rt_x.y"}`, "ory_rt_x.y"},
		{`{"refresh_token" : "r1" ,"x":1}`, "r1"},
		{`{"refresh_token":null}`, ""},
		{`{"refresh_token":"a\"b"}`, ""},
		{`{"access_token":"x"}`, ""},
	} {
		if got := jsonStringValue([]byte(tc.body), "refresh_token"); got != tc.want {
			t.Errorf("jsonStringValue(%s) = %q, want %q", tc.body, got, tc.want)
		}
	}
}

func TestIsRedirectURI(t *testing.T) {
	for _, tc := range []struct {
		u    string
		want bool
	}{
		{"http://127.0.0.1/callback?code=x&state=y", true},
		{"http://127.0.0.1/callback", true},
		{"http://127.0.0.1:8080/callback?code=x", false},
		{"http://127.0.0.1/login?auth=x", false},
	} {
		u, _ := url.Parse(tc.u)
		if got := isRedirectURI(u, "http://127.0.0.1/callback"); got != tc.want {
			t.Errorf("isRedirectURI(%s) = %v, want %v", tc.u, got, tc.want)
		}
	}
}

// fakeProvider is an authorization server in the manner of oidc-provider:
// /auth without a session redirects to /interaction/{uid}, which signs the
// browser in (a cookie) and sends it back to /auth/{uid}; with a session,
// /auth answers with the code at once. The token endpoint checks PKCE and
// rotates refresh tokens.
type fakeProvider struct {
	mu       sync.Mutex
	pending  map[string]url.Values // uid -> the authorization request
	codes    map[string]string     // code -> code_challenge
	refresh  map[string]bool       // live refresh tokens
	n        int
	sessions atomic.Int64
}

func (f *fakeProvider) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	id := strconv.Itoa(f.n)
	codeRedirect := func(q url.Values) {
		code := "code" + id
		f.codes[code] = q.Get("code_challenge")
		http.Redirect(w, r, q.Get("redirect_uri")+"?code="+code+"&state="+url.QueryEscape(q.Get("state")), http.StatusSeeOther)
	}
	switch {
	case r.URL.Path == "/auth":
		if _, err := r.Cookie("_session"); err != nil {
			f.pending[id] = r.URL.Query()
			http.Redirect(w, r, "/interaction/"+id, http.StatusSeeOther)
			return
		}
		codeRedirect(r.URL.Query())
	case strings.HasPrefix(r.URL.Path, "/interaction/"):
		f.sessions.Add(1)
		http.SetCookie(w, &http.Cookie{Name: "_session", Value: "s" + id, Path: "/"})
		http.Redirect(w, r, "/auth/"+strings.TrimPrefix(r.URL.Path, "/interaction/"), http.StatusSeeOther)
	case strings.HasPrefix(r.URL.Path, "/auth/"):
		q, ok := f.pending[strings.TrimPrefix(r.URL.Path, "/auth/")]
		if _, err := r.Cookie("_session"); err != nil || !ok {
			http.Error(w, "no session", http.StatusBadRequest)
			return
		}
		codeRedirect(q)
	case r.URL.Path == "/token":
		_ = r.ParseForm()
		ok := false
		switch r.PostForm.Get("grant_type") {
		case "authorization_code":
			ch, known := f.codes[r.PostForm.Get("code")]
			delete(f.codes, r.PostForm.Get("code"))
			ok = known && ch == s256(r.PostForm.Get("code_verifier"))
		case "refresh_token":
			ok = f.refresh[r.PostForm.Get("refresh_token")]
			delete(f.refresh, r.PostForm.Get("refresh_token"))
		}
		if !ok || r.PostForm.Get("client_id") != "app" {
			http.Error(w, `{"error":"invalid_grant"}`, http.StatusBadRequest)
			return
		}
		f.refresh["rt"+id] = true
		fmt.Fprintf(w, `{"access_token":"at%s","id_token":"it%s","refresh_token":"rt%s","token_type":"Bearer"}`, id, id, id)
	default:
		http.NotFound(w, r)
	}
}

// TestBrowserFlows runs authcode and refresh against fakeProvider: each
// client signs in once before the warm-up and never again, a flow takes
// two HTTP requests, and every refresh token is used once.
func TestBrowserFlows(t *testing.T) {
	f := &fakeProvider{pending: map[string]url.Values{}, codes: map[string]string{}, refresh: map[string]bool{}}
	srv := httptest.NewServer(f)
	defer srv.Close()
	for _, mode := range []string{"authcode", "refresh"} {
		f.sessions.Store(0)
		o := options{url: srv.URL + "/token", authorizeURL: srv.URL + "/auth", mode: mode, c: 3, n: 60, d: 5 * time.Second, warmup: 100 * time.Millisecond,
			client: "raw", auth: "basic", clientID: "app", redirectURI: "http://127.0.0.1/callback", scope: "openid offline_access",
			login: "oidc-provider", timeout: 5 * time.Second, check: true}
		if err := o.validate(); err != nil {
			t.Fatalf("%s: validate: %v", mode, err)
		}
		res, err := o.load()
		if err != nil {
			t.Fatalf("%s: load: %v", mode, err)
		}
		if res.Errors != 0 || res.Requests != 60 {
			t.Errorf("%s: %d requests, %d errors; want 60, 0", mode, res.Requests, res.Errors)
		}
		if want := map[string]float64{"authcode": 2, "refresh": 1}[mode]; res.HTTPPerOp != want {
			t.Errorf("%s: http_per_op = %v, want %v", mode, res.HTTPPerOp, want)
		}
		if n := f.sessions.Load(); n != 3 {
			t.Errorf("%s: %d sign-ins, want 3 (one per client, before the warm-up)", mode, n)
		}
	}
}

func TestParseTargets(t *testing.T) {
	got, err := parseTargets([]string{"/fhir/Patient/p1\ttok1", "/fhir\ttok2\tp2"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []fhirTarget{{path: "/fhir/Patient/p1", token: "tok1"}, {path: "/fhir", token: "tok2", patient: "p2"}}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("parseTargets = %v, want %v", got, want)
	}
	for _, bad := range []string{"fhir/Patient/p1\ttok", "/fhir/Patient/p1", "/fhir\t\tp", "/a\tb\tc\td"} {
		if _, err := parseTargets([]string{bad}); err == nil {
			t.Errorf("parseTargets(%q) accepted a bad line", bad)
		}
	}
}

func TestCheckFHIR(t *testing.T) {
	for _, tc := range []struct {
		mode, path, body string
		ok               bool
	}{
		{"fhir-read", "/fhir/Observation/o1", `{"resourceType":"Observation","id":"o1"}`, true},
		{"fhir-read", "/fhir/Observation/o1", `{"resourceType":"Observation","id":"o12"}`, false},
		{"fhir-search", "/fhir/Observation?x", `{"type":"searchset","entry":[{"search":{"mode":"match"}}]}`, true},
		{"fhir-search", "/fhir/Observation?x", `{"type":"searchset","total":0}`, false},
		{"fhir-include", "/fhir/MedicationRequest?x", `{"type":"searchset","entry":[{"search":{"mode":"match"}},{"search":{"mode":"include"}}]}`, true},
		{"fhir-include", "/fhir/MedicationRequest?x", `{"type":"searchset","entry":[{"search":{"mode":"match"}}]}`, false},
		{"fhir-transaction", "/fhir", `{"resourceType":"Bundle","type":"transaction-response"}`, true},
		{"fhir-transaction", "/fhir", `{"resourceType":"OperationOutcome"}`, false},
	} {
		err := checkFHIR(tc.mode, fhirTarget{path: tc.path}, []byte(tc.body))
		if (err == nil) != tc.ok {
			t.Errorf("checkFHIR(%s, %s) = %v, want ok=%v", tc.mode, tc.body, err, tc.ok)
		}
	}
}

func TestTransactionBundle(t *testing.T) {
	var b struct {
		Type  string `json:"type"`
		Entry []struct {
			FullURL  string `json:"fullUrl"`
			Resource struct {
				ResourceType string `json:"resourceType"`
				Subject      struct{ Reference string }
				Encounter    struct{ Reference string }
			} `json:"resource"`
			Request struct{ Method, URL string } `json:"request"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(transactionBundle(100, "p1"), &b); err != nil {
		t.Fatal(err)
	}
	if b.Type != "transaction" || len(b.Entry) != 100 {
		t.Fatalf("type %q, %d entries; want transaction, 100", b.Type, len(b.Entry))
	}
	seen := map[string]bool{}
	for i, e := range b.Entry {
		if seen[e.FullURL] || !strings.HasPrefix(e.FullURL, "urn:uuid:") || e.Request.Method != "POST" || e.Resource.Subject.Reference != "Patient/p1" {
			t.Fatalf("entry %d: %+v", i, e)
		}
		seen[e.FullURL] = true
		if i > 0 && (e.Resource.ResourceType != "Observation" || e.Resource.Encounter.Reference != b.Entry[0].FullURL) {
			t.Fatalf("entry %d does not refer to the Encounter: %+v", i, e)
		}
	}
}

func TestFHIRRequest(t *testing.T) {
	o := &options{mode: "fhir-read"}
	got := string(o.fhirRequest(nil, "127.0.0.1:1", fhirTarget{path: "/fhir/Patient/p1", token: "T"}))
	want := "GET /fhir/Patient/p1 HTTP/1.1\r\nHost: 127.0.0.1:1\r\nUser-Agent: smartgate-bench-load\r\nAccept: application/fhir+json\r\nAuthorization: Bearer T\r\n\r\n"
	if got != want {
		t.Errorf("request = %q, want %q", got, want)
	}
	o = &options{mode: "fhir-transaction", txEntries: 2}
	req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(string(o.fhirRequest(nil, "h", fhirTarget{path: "/fhir", token: "T", patient: "p"})))))
	if err != nil || req.Method != "POST" || req.ContentLength <= 0 || req.Header.Get("Content-Type") != "application/fhir+json" {
		t.Fatalf("transaction request: %v %+v", err, req)
	}
}
