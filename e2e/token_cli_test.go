package e2e

import (
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestTokenCommand runs `smartgate token` (the loopback flow with PKCE for
// the built-in public client smartgate-cli, DESIGN.md "Command line") the
// way a person does: it prints the authorization URL, the user signs in
// and consents in a browser (here the headless form filler on the real
// pages), the browser lands on the command's loopback listener, and the
// command prints the token response.
func TestTokenCommand(t *testing.T) {
	s := startDev(t)
	p := start(t, s.env, "token", "--server", s.URL, "--scope", "openid fhirUser offline_access user/*.rs", "--timeout", "2m")

	var authURL string
	urlLine := regexp.MustCompile(`(?m)^\s+(http://\S+/oauth2/authorize\?\S+)$`)
	waitFor(t, 30*time.Second, "smartgate token prints the authorization URL", func() (bool, string) {
		m := urlLine.FindStringSubmatch(p.stderr.String())
		if m == nil {
			return false, "stderr so far: " + p.stderr.String()
		}
		authURL = m[1]
		return true, ""
	})
	for _, want := range []string{"client_id=smartgate-cli", "code_challenge_method=S256", "aud=" + url.QueryEscape(s.URL+"/fhir"), "state="} {
		if !strings.Contains(authURL, want) {
			t.Errorf("authorization URL %s lacks %s", authURL, want)
		}
	}

	b := newHeadless(t, s.URL)
	fl := b.authorize(authURL, person{username: "ines.munoz", password: demoPassword(t, s.dataDir, "ines.munoz")})
	if fl.callback == nil || fl.callback.Hostname() != "127.0.0.1" || fl.callback.Path != "/callback" || fl.query().Get("code") == "" {
		t.Fatalf("the flow did not come back to the command's loopback redirect with a code: %s (pages %v)", fl.last, fl.pages)
	}
	// The browser follows the redirect to the command's listener.
	resp, err := http.Get(fl.callback.String())
	if err != nil {
		t.Fatalf("the command's loopback listener: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("loopback listener answered %d", resp.StatusCode)
	}
	if !p.waitExit(30 * time.Second) {
		t.Fatalf("smartgate token did not exit after the browser came back; %s", p.describe())
	}
	if p.exitCode() != 0 {
		t.Fatalf("smartgate token exit %d; %s", p.exitCode(), p.describe())
	}
	var tok map[string]any
	if err := json.Unmarshal([]byte(p.stdout.String()), &tok); err != nil {
		t.Fatalf("stdout is not the token response JSON: %v\n%s", err, p.stdout.String())
	}
	at, _ := tok["access_token"].(string)
	if at == "" || tok["refresh_token"] == nil || tok["id_token"] == nil || tok["scope"] != "openid fhirUser offline_access user/*.rs" {
		t.Errorf("token response %v lacks access_token, refresh_token, id_token or the granted scope", tok)
	}
	req, _ := http.NewRequest(http.MethodGet, s.URL+"/fhir/Practitioner/pra-ines-munoz", nil)
	req.Header.Set("Authorization", "Bearer "+at)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("the command's access token at the FHIR API: %d, want 200", resp.StatusCode)
	}
}
