package main

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
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
