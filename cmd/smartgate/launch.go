package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/oauth2"

	"smartgate/internal/config"
	"smartgate/internal/fhir"
	"smartgate/internal/identity"
	"smartgate/internal/oauth"
	"smartgate/internal/server"
)

func launchCmd(g *globals) *cobra.Command {
	var clientID, patient, encounter, intent, issuer string
	var fhirContext []string
	var noBanner bool
	cmd := &cobra.Command{
		Use:   "launch",
		Short: "Create an EHR launch for an app and print its launch URL",
		Long: `Create a single-use EHR launch context (valid 5 minutes) bound to one app,
as an EHR does when a user opens the app from a patient's chart, and print
the app's launch URL (its initiate_login_uri with ?iss=<FHIR base>&launch=<id>).
The app then sends the browser to /oauth2/authorize with scope=launch ... and
launch=<id>; at sign-in smartgate checks that the user may act for the patient.

EHR integrations do the same over HTTP: POST /oauth2/launch (docs/flows/ehr-launch.md).`,
		Example: `  smartgate launch --client demo-clinician-app --patient pat-amy-shaw
  smartgate launch --client demo-clinician-app --patient pat-amy-shaw --encounter enc-amy-shaw-1 --output json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if clientID == "" || patient == "" {
				return errors.New("--client and --patient are required")
			}
			a, reg, err := registry(g, cmd)
			if err != nil {
				return err
			}
			defer a.Close()
			lr := oauth.LaunchRequest{ClientID: clientID, Patient: patient, Encounter: encounter, FHIRContext: fhirContext, Intent: intent, CreatedBy: "cli"}
			if noBanner {
				f := false
				lr.NeedBanner = &f
			}
			api := fhir.New(fhir.Deps{Store: a.Store})
			if issuer == "" {
				issuer = defaultIssuer(&a.Cfg.Config)
			}
			if issuer == "" {
				return errors.New("--issuer is required: the public base URL of the server the app talks to (the launch URL's iss is <issuer>/fhir)")
			}
			issuer = strings.TrimRight(issuer, "/")
			out, err := oauth.CreateLaunch(cmd.Context(), a.Store, reg, api.Exists, issuer+"/fhir", lr, time.Now())
			if err != nil {
				return err
			}
			cliAudit(cmd.Context(), a, "launch.create", clientID, fmt.Sprintf(`{"patient":%q}`, patient))
			return g.print(out, func(w io.Writer) {
				fmt.Fprintf(w, "launch:     %s\niss:        %s\nexpires in: %d s (single use)\n", out.Launch, out.ISS, out.ExpiresIn)
				if out.LaunchURL != "" {
					fmt.Fprintf(w, "launch URL: %s\n", out.LaunchURL)
				} else {
					fmt.Fprintf(w, "the app registered no launch URL (initiate_login_uri); give it iss and launch, or set one with: smartgate client update %s --initiate-login-uri URL\n", clientID)
				}
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&clientID, "client", "", "client_id of the app to launch")
	f.StringVar(&patient, "patient", "", "id of the Patient in context")
	f.StringVar(&encounter, "encounter", "", "id of the Encounter in context (optional)")
	f.StringArrayVar(&fhirContext, "fhir-context", nil, "a reference in fhirContext, e.g. DiagnosticReport/123 (repeat)")
	f.StringVar(&intent, "intent", "", "SMART intent (optional)")
	f.StringVar(&issuer, "issuer", "", "the server's public base URL (default: the configured issuer; for a dev data dir http://127.0.0.1:8080)")
	f.BoolVar(&noBanner, "no-banner", false, "need_patient_banner false: the EHR shows the patient around the app")
	return cmd
}

func tokenCmd(g *globals) *cobra.Command {
	var server, scopes, clientID, keyFile, kid, alg string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Print a token response: signed in through the browser, or as a backend service with a key",
		Long: `Get an access token as a signed-in user, the way a native app does
(RFC 8252): smartgate token listens on a loopback port, prints the
authorization URL to open in a browser, and after you sign in and consent
exchanges the code (PKCE S256) with the built-in public client smartgate-cli.
It prints the token response as JSON on standard output:

  TOKEN=$(smartgate token | jq -r .access_token)
  curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8080/fhir/Patient

Unattended jobs (no user) use SMART Backend Services: with --client-id and
--key-file, smartgate token signs a client assertion (RFC 7523; RS384 for an
RSA key, ES384 for a P-384 key) with the service's private key, a PEM file
or a private JWK, and prints the client_credentials token response
(docs/flows/backend-service.md):

  smartgate token --client-id demo-backend --key-file private.pem --scope system/Observation.rs`,
		Example: `  smartgate token > token.json
  smartgate token --client-id CLIENT_ID --key-file private.pem --server http://127.0.0.1:8080
  jq '.[] | select(.client_id == "demo-backend") | .private_jwk' smartgate-data/dev-clients.json > demo-backend.jwk
  smartgate token --client-id demo-backend --key-file demo-backend.jwk`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if server == "" {
				cfg, err := g.load(cmd)
				if err != nil {
					return err
				}
				server = defaultIssuer(&cfg.Config)
			}
			server = strings.TrimRight(server, "/")
			if server == "" {
				return errors.New("--server is required (the issuer URL, e.g. http://127.0.0.1:8080)")
			}
			if keyFile != "" || clientID != "" {
				if keyFile == "" || clientID == "" {
					return errors.New("a backend service needs both --client-id and --key-file (its private key: a PEM file or a private JWK)")
				}
				s := ""
				if cmd.Flags().Changed("scope") {
					s = scopes // else the server grants every system/ scope the client registered
				}
				return runBackendToken(cmd.Context(), g, server, clientID, keyFile, kid, alg, s)
			}
			if kid != "" || alg != "" {
				return errors.New("--kid and --alg go with --client-id and --key-file (a backend service)")
			}
			return runTokenFlow(cmd.Context(), g, server, scopes, timeout)
		},
	}
	f := cmd.Flags()
	f.StringVar(&server, "server", "", "smartgate's issuer URL (default: the configured issuer; dev: http://127.0.0.1:8080)")
	f.StringVar(&scopes, "scope", "openid fhirUser offline_access user/*.rs", "scopes to ask for (with --key-file: system/ scopes; default: every scope the client registered)")
	f.DurationVar(&timeout, "timeout", 5*time.Minute, "how long to wait for the browser")
	f.StringVar(&clientID, "client-id", "", "backend service: the client_id to sign the assertion as (with --key-file)")
	f.StringVar(&keyFile, "key-file", "", "backend service: its private key, a PEM file (PKCS#8, PKCS#1 or SEC 1) or a private JWK (JSON)")
	f.StringVar(&kid, "kid", "", "backend service: the kid of the registered key (default: the JWK's kid; for PEM, the RFC 7638 thumbprint)")
	f.StringVar(&alg, "alg", "", "backend service: the signing algorithm (default: RS384 for RSA, ES384 for P-384, ES256 for P-256, EdDSA for Ed25519)")
	return cmd
}

func runTokenFlow(ctx context.Context, g *globals, server, scopes string, timeout time.Duration) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("listening on a loopback port for the redirect: %w", err)
	}
	defer ln.Close()
	redirect := fmt.Sprintf("http://%s/callback", ln.Addr().String())
	conf := &oauth2.Config{ClientID: oauth.CLIClientID, Scopes: strings.Fields(scopes), RedirectURL: redirect,
		Endpoint: oauth2.Endpoint{AuthURL: server + "/oauth2/authorize", TokenURL: server + "/oauth2/token", AuthStyle: oauth2.AuthStyleInParams}}
	var b [16]byte
	_, _ = rand.Read(b[:])
	state := base64.RawURLEncoding.EncodeToString(b[:])
	verifier := oauth2.GenerateVerifier()
	authURL := conf.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("aud", server+"/fhir"))
	fmt.Fprintf(g.stderr, "Open this URL in a browser, sign in and allow access:\n\n  %s\n\nWaiting for the browser (up to %s)...\n", authURL, timeout)

	type result struct {
		code string
		err  error
	}
	done := make(chan result, 1)
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/callback" {
			http.NotFound(w, r)
			return
		}
		q := r.URL.Query()
		var res result
		switch {
		case q.Get("state") != state:
			res.err = errors.New("the browser came back with another state; start again")
		case q.Get("iss") != "" && q.Get("iss") != server:
			res.err = fmt.Errorf("the response came from issuer %q, not %q (RFC 9207); start again", q.Get("iss"), server)
		case q.Get("error") != "":
			res.err = fmt.Errorf("authorization refused: %s: %s", q.Get("error"), q.Get("error_description"))
		default:
			res.code = q.Get("code")
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if res.err != nil {
			fmt.Fprintf(w, "<!doctype html><title>smartgate token</title><p>%s</p>", html.EscapeString(res.err.Error()))
		} else {
			fmt.Fprint(w, "<!doctype html><title>smartgate token</title><p>Signed in. You can close this tab and go back to the terminal.</p>")
		}
		select {
		case done <- res:
		default:
		}
	})}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	var res result
	select {
	case res = <-done:
	case <-time.After(timeout):
		return fmt.Errorf("no answer from the browser within %s", timeout)
	case <-ctx.Done():
		return ctx.Err()
	}
	if res.err != nil {
		return res.err
	}
	tok, err := conf.Exchange(ctx, res.code, oauth2.VerifierOption(verifier))
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) {
			return fmt.Errorf("the token endpoint refused the code: %s: %s", re.ErrorCode, re.ErrorDescription)
		}
		return err
	}
	out := map[string]any{"access_token": tok.AccessToken, "token_type": tok.TokenType, "expires_in": tok.ExpiresIn}
	if tok.RefreshToken != "" {
		out["refresh_token"] = tok.RefreshToken
	}
	for _, k := range []string{"scope", "id_token", "patient", "encounter"} {
		if v, ok := tok.Extra(k).(string); ok && v != "" {
			out[k] = v
		}
	}
	enc := json.NewEncoder(g.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// defaultIssuer is the issuer of the dev server last started on this data
// dir (it follows --listen), else the configured issuer.
func defaultIssuer(cfg *config.Config) string {
	if b, err := os.ReadFile(filepath.Join(cfg.DataDir, server.DevServerFile)); err == nil {
		var d struct {
			Issuer string `json:"issuer"`
		}
		if json.Unmarshal(b, &d) == nil && d.Issuer != "" {
			return d.Issuer
		}
	}
	if cfg.Issuer != "" {
		return cfg.Issuer
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, identity.DevUsersFile)); err == nil {
		return "http://" + config.DevListen
	}
	return ""
}
