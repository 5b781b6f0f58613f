package oauth

import (
	"strings"
	"testing"

	"smartgate/internal/problem"
)

func TestValidateRedirectURI(t *testing.T) {
	for _, tc := range []struct {
		uri    string
		public bool
		want   string // "" for accepted; otherwise a fragment of the description
	}{
		{"https://app.example.com/cb", false, ""},
		{"https://app.example.com/cb", true, ""},
		{"https://app.example.com/cb?x=1", false, ""},
		{"http://127.0.0.1:8080/cb", false, ""},
		{"http://127.0.0.1/cb", true, ""},
		{"http://127.5.6.7:9/cb", true, ""}, // all of 127/8 is loopback
		{"http://[::1]/cb", true, ""},
		{"http://[::1]:51000/cb", false, ""},
		{"http://localhost/cb", true, "use the loopback IP literal http://127.0.0.1:PORT/"},
		{"http://localhost:8080/cb", false, "RFC 8252 section 8.3"},
		{"http://example.com/cb", false, "uses http on a non-loopback host"},
		{"http://10.0.0.1/cb", true, "uses http on a non-loopback host"},
		{"https://app.example.com/cb#frag", false, "has a fragment"},
		{"https://app.example.com/cb#", false, "has a fragment"},
		{"com.example.app:/cb", true, ""},
		{"com.example.app:/cb", false, "only public native apps may register"},
		{"myapp:/cb", true, "must be a reverse domain name"},
		{"javascript:alert(1)", true, "must be a reverse domain name"},
		{"javascript:alert(1)", false, "only public native apps"},
		{"data:text/html,x", true, "must be a reverse domain name"},
		{"/cb", true, "is not an absolute URI"},
		{"cb", false, "is not an absolute URI"},
		{"", true, "is not an absolute URI"},
		{"https:///cb", false, "has no host"},
		{"https://user:pw@app.example.com/cb", false, "must not carry user info"},
		{"https://app.example.com/%zz", false, "is not an absolute URI"},
	} {
		err := ValidateRedirectURI(tc.uri, tc.public)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("ValidateRedirectURI(%q, public=%v) = %v, want accepted", tc.uri, tc.public, err)
		case tc.want != "" && err == nil:
			t.Errorf("ValidateRedirectURI(%q, public=%v) accepted, want refusal containing %q", tc.uri, tc.public, tc.want)
		case tc.want != "":
			if !problem.IsID(err, problem.InvalidRedirectURI) {
				t.Errorf("ValidateRedirectURI(%q, public=%v): id %s, want %s", tc.uri, tc.public, problem.From(err).ID, problem.InvalidRedirectURI)
			}
			if d := problem.From(err).Description; !strings.Contains(d, tc.want) {
				t.Errorf("ValidateRedirectURI(%q, public=%v) = %q, want it to contain %q", tc.uri, tc.public, d, tc.want)
			}
		}
	}
}

func TestMatchRedirectURI(t *testing.T) {
	for _, tc := range []struct {
		registered []string
		requested  string
		want       bool
	}{
		{[]string{"https://app.example.com/cb"}, "https://app.example.com/cb", true},
		{[]string{"https://a.example/x", "https://app.example.com/cb"}, "https://app.example.com/cb", true},
		{[]string{"https://app.example.com/cb"}, "https://app.example.com/cb/", false},
		{[]string{"https://app.example.com/cb"}, "https://app.example.com/CB", false},
		{[]string{"https://app.example.com/cb"}, "https://app.example.com/cb?x=1", false},
		{[]string{"https://app.example.com/cb"}, "https://app.example.com:8443/cb", false},
		{[]string{"https://app.example.com:443/cb"}, "https://app.example.com/cb", false},
		{[]string{"https://app.example.com/cb"}, "http://app.example.com/cb", false},
		{[]string{"http://10.1.2.3:8080/cb"}, "http://10.1.2.3:9090/cb", false},
		// RFC 8252 §7.3: a loopback redirect matches on any port.
		{[]string{"http://127.0.0.1/cb"}, "http://127.0.0.1:51234/cb", true},
		{[]string{"http://127.0.0.1:8080/cb"}, "http://127.0.0.1:9090/cb", true},
		{[]string{"http://127.0.0.1:8080/cb"}, "http://127.0.0.1/cb", true},
		{[]string{"http://[::1]:8080/cb"}, "http://[::1]:1/cb", true},
		{[]string{"http://127.0.0.1:8080/cb?a=1"}, "http://127.0.0.1:9/cb?a=1", true},
		{[]string{"http://127.0.0.1:8080/cb"}, "http://127.0.0.1:9090/other", false},
		{[]string{"http://127.0.0.1:8080/cb"}, "http://127.0.0.1:9090/cb?x=1", false},
		{[]string{"http://127.0.0.1:8080/cb"}, "http://[::1]:8080/cb", false}, // another host
		{[]string{"http://127.0.0.1:8080/cb"}, "https://127.0.0.1:8080/cb", false},
		{[]string{"http://127.0.0.1:8080/cb"}, "http://localhost:8080/cb", false},
		{nil, "http://127.0.0.1/cb", false},
	} {
		if got := MatchRedirectURI(tc.registered, tc.requested); got != tc.want {
			t.Errorf("MatchRedirectURI(%q, %q) = %v, want %v", tc.registered, tc.requested, got, tc.want)
		}
	}
}
