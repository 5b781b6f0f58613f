package main

// The --server mode of the admin commands (client, user, key, setting):
// instead of opening the database, the command calls the admin API of a
// running smartgate with an access token that carries the smartgate:admin
// scope (docs/admin.md, "The command line"). Local mode stays as it is.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"smartgate/internal/admin"
	"smartgate/internal/keys"
	"smartgate/internal/problem"
	"smartgate/internal/store"
)

// remoteFunc is a command's --server implementation.
type remoteFunc func(cmd *cobra.Command, args []string, c *adminClient) error

// addRemote gives an admin command group --server and --token, and makes
// each subcommand with an entry in impls call the admin API when --server
// is set; a subcommand without one refuses --server.
func addRemote(group *cobra.Command, g *globals, impls map[string]remoteFunc) {
	pf := group.PersistentFlags()
	pf.String("server", "", "act through the admin API of the smartgate at this URL (e.g. https://ehr.example.org) instead of opening the database")
	pf.String("token", "", "with --server: an access token with the smartgate:admin scope (default: $SMARTGATE_TOKEN)")
	for _, sub := range group.Commands() {
		impl, local := impls[sub.Name()], sub.RunE
		name := sub.CommandPath()
		sub.RunE = func(cmd *cobra.Command, args []string) error {
			server, _ := cmd.Flags().GetString("server")
			if server == "" {
				if local == nil {
					return fmt.Errorf("%s needs --server URL: it acts through the admin API", name)
				}
				return local(cmd, args)
			}
			if impl == nil {
				return fmt.Errorf("%s works only on this machine's data; run it without --server on a host that has the database and the KEK", name)
			}
			c, err := newAdminClient(g, cmd, server)
			if err != nil {
				return err
			}
			return impl(cmd, args, c)
		}
	}
}

// adminClient calls the admin API.
type adminClient struct {
	base  string // the server's URL, no trailing slash
	token string
	hc    *http.Client
}

func newAdminClient(g *globals, cmd *cobra.Command, server string) (*adminClient, error) {
	u, err := url.Parse(server)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("--server %q is not a URL; give the server's base URL, e.g. https://ehr.example.org or http://127.0.0.1:8080", server)
	}
	tok, _ := cmd.Flags().GetString("token")
	if tok == "" {
		for _, kv := range g.env {
			if v, ok := strings.CutPrefix(kv, "SMARTGATE_TOKEN="); ok {
				tok = v
			}
		}
	}
	base := strings.TrimRight(server, "/")
	if tok == "" {
		return nil, fmt.Errorf("--server needs an access token with the smartgate:admin scope: give --token or set SMARTGATE_TOKEN. As an administrator, sign in through the browser with\n  export SMARTGATE_TOKEN=$(smartgate token --server %s --scope smartgate:admin | jq -r .access_token)\nor, for an admin client (created with --admin), get one with client_credentials and scope=smartgate:admin (docs/admin.md)", base)
	}
	return &adminClient{base: base, token: strings.TrimSpace(tok), hc: &http.Client{Timeout: 2 * time.Minute}}, nil
}

// remoteError is a refusal of the admin API whose id this build does not
// know (a newer server).
type remoteError struct {
	status            int
	code, description string
	uri               string
}

func (e *remoteError) Error() string {
	s := fmt.Sprintf("the server refused (HTTP %d %s): %s", e.status, e.code, e.description)
	if e.uri != "" {
		s += " (see " + e.uri + ")"
	}
	return s
}

// do sends one request; in (if not nil) goes as the JSON body, and a 2xx
// answer is decoded into out (if not nil). A refusal becomes the error the
// server described.
func (c *adminClient) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+"/admin/api"+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("calling %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("reading the answer of %s: %w", c.base, err)
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
			URI         string `json:"error_uri"`
		}
		if json.Unmarshal(b, &e) != nil || e.Description == "" {
			return fmt.Errorf("%s %s answered HTTP %d, not the admin API's JSON; is --server the smartgate base URL (without /admin/api)?", method, c.base+"/admin/api"+path, resp.StatusCode)
		}
		_, id, _ := strings.Cut(e.URI, "#")
		if _, known := problem.Lookup(problem.ID(id)); known {
			return problem.New(problem.ID(id), "%s", e.Description)
		}
		return &remoteError{status: resp.StatusCode, code: e.Error, description: e.Description, uri: e.URI}
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("the answer of %s is not what this smartgate expects: %w", c.base, err)
		}
	}
	return nil
}

// newTable is the CLI's table layout.
func newTable(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0) }

// esc escapes one path segment.
func esc(s string) string { return url.PathEscape(s) }

// ---- client ----

// printApp prints an app as the local command does, plus its last use.
func (g *globals) printApp(a admin.App) error {
	return g.print(a, func(w io.Writer) {
		printClient(w, a)
		if a.LastUsedAt != nil {
			fmt.Fprintf(w, "last use:  %s\n", a.LastUsedAt.Format(time.RFC3339))
		} else {
			fmt.Fprintln(w, "last use:  never")
		}
	})
}

// flagsMetadata reads the metadata flags of client create and update as
// the local command does (metadataFlags.apply), from the parsed flags.
func flagsMetadata(cmd *cobra.Command) (metadataFlags, error) {
	f := cmd.Flags()
	var m metadataFlags
	var errs []error
	str := func(name string, dst *string) {
		if f.Lookup(name) != nil {
			v, err := f.GetString(name)
			errs = append(errs, err)
			*dst = v
		}
	}
	list := func(name string, dst *[]string) {
		v, err := f.GetStringArray(name)
		errs = append(errs, err)
		*dst = v
	}
	flag := func(name string, dst *bool) {
		v, err := f.GetBool(name)
		errs = append(errs, err)
		*dst = v
	}
	str("name", &m.name)
	str("type", &m.typ)
	str("auth-method", &m.authMethod)
	str("scope", &m.scope)
	str("jwks-uri", &m.jwksURI)
	str("jwks-file", &m.jwksFile)
	str("initiate-login-uri", &m.initiateLoginURI)
	list("redirect-uri", &m.redirectURIs)
	list("grant-type", &m.grantTypes)
	list("post-logout-redirect-uri", &m.postLogoutURIs)
	flag("introspect-any", &m.introspectAny)
	flag("may-launch", &m.mayLaunch)
	flag("admin", &m.admin)
	flag("pkce-exempt", &m.pkceExempt)
	flag("require-par", &m.requirePAR)
	return m, errors.Join(errs...)
}

func remoteClientCommands(g *globals) map[string]remoteFunc {
	status := func(path, what string) remoteFunc {
		return func(cmd *cobra.Command, args []string, c *adminClient) error {
			var a admin.App
			if err := c.do(cmd.Context(), http.MethodPost, "/clients/"+esc(args[0])+path, nil, &a); err != nil {
				return err
			}
			return g.print(a, func(w io.Writer) {
				fmt.Fprintf(w, "client %s is now %s", a.ClientID, a.Status)
				if what == "disable" {
					fmt.Fprint(w, "; every token it held is revoked")
				}
				fmt.Fprintln(w)
			})
		}
	}
	return map[string]remoteFunc{
		"create": func(cmd *cobra.Command, _ []string, c *adminClient) error {
			if !cmd.Flags().Changed("type") {
				return errors.New("--type is required: public, confidential-symmetric or confidential-asymmetric")
			}
			m, err := flagsMetadata(cmd)
			if err != nil {
				return err
			}
			n := admin.NewApp{IntrospectAny: m.introspectAny, MayLaunch: m.mayLaunch, Admin: m.admin, PKCEExempt: m.pkceExempt, RequirePAR: m.requirePAR}
			if err := m.apply(cmd, &n.ClientMetadata); err != nil {
				return err
			}
			var a admin.App
			if err := c.do(cmd.Context(), http.MethodPost, "/clients", n, &a); err != nil {
				return err
			}
			return g.print(a, func(w io.Writer) { printClient(w, a) })
		},
		"list": func(cmd *cobra.Command, _ []string, c *adminClient) error {
			var apps []admin.App
			if err := c.do(cmd.Context(), http.MethodGet, "/clients", nil, &apps); err != nil {
				return err
			}
			return g.print(apps, func(w io.Writer) {
				tw := newTable(w)
				fmt.Fprintln(tw, "CLIENT_ID\tNAME\tTYPE\tSTATUS\tVERIFIED\tLAST USE\tSCOPE")
				for _, a := range apps {
					last := "never"
					if a.LastUsedAt != nil {
						last = a.LastUsedAt.Format(time.RFC3339)
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%v\t%s\t%s\n", a.ClientID, a.Metadata.ClientName, a.Type, a.Status, a.Verified, last, a.Metadata.Scope)
				}
				tw.Flush()
			})
		},
		"show": func(cmd *cobra.Command, args []string, c *adminClient) error {
			var a admin.App
			if err := c.do(cmd.Context(), http.MethodGet, "/clients/"+esc(args[0]), nil, &a); err != nil {
				return err
			}
			return g.printApp(a)
		},
		"update": func(cmd *cobra.Command, args []string, c *adminClient) error {
			m, err := flagsMetadata(cmd)
			if err != nil {
				return err
			}
			var cur admin.App
			if err := c.do(cmd.Context(), http.MethodGet, "/clients/"+esc(args[0]), nil, &cur); err != nil {
				return err
			}
			md := cur.Metadata
			if err := m.apply(cmd, &md); err != nil {
				return err
			}
			ch := changedMetadata(cmd, m, cur, md)
			var a admin.App
			if err := c.do(cmd.Context(), http.MethodPost, "/clients/"+esc(args[0]), ch, &a); err != nil {
				return err
			}
			return g.printApp(a)
		},
		"enable":  status("/enable", "enable"),
		"disable": status("/disable", "disable"),
		"rotate-secret": func(cmd *cobra.Command, args []string, c *adminClient) error {
			var a admin.App
			if err := c.do(cmd.Context(), http.MethodPost, "/clients/"+esc(args[0])+"/rotate-secret", nil, &a); err != nil {
				return err
			}
			res := map[string]string{"client_id": a.ClientID, "client_secret": a.ClientSecret}
			return g.print(res, func(w io.Writer) {
				fmt.Fprintf(w, "client_id:      %s\nclient_secret:  %s  (shown once: store it now)\n", a.ClientID, a.ClientSecret)
			})
		},
		"delete": func(cmd *cobra.Command, args []string, c *adminClient) error {
			if err := c.do(cmd.Context(), http.MethodDelete, "/clients/"+esc(args[0]), nil, nil); err != nil {
				return err
			}
			return g.print(map[string]string{"deleted": args[0]}, func(w io.Writer) { fmt.Fprintf(w, "deleted client %s\n", args[0]) })
		},
		"initial-token": func(cmd *cobra.Command, _ []string, c *adminClient) error {
			d, err := cmd.Flags().GetDuration("expires")
			if err != nil {
				return err
			}
			var it admin.InitialToken
			if err := c.do(cmd.Context(), http.MethodPost, "/initial-tokens", map[string]int64{"expires_in": int64(d / time.Second)}, &it); err != nil {
				return err
			}
			return g.print(it, func(w io.Writer) {
				fmt.Fprintf(w, "initial access token: %s\nvalid until %s; send it as Authorization: Bearer <token> to POST /oauth2/register\n", it.Token, it.ExpiresAt.Format(time.RFC3339))
			})
		},
	}
}

// changedMetadata is the API change of client update: the metadata
// fields and flags the user gave.
func changedMetadata(cmd *cobra.Command, m metadataFlags, cur admin.App, md store.ClientMetadata) admin.AppChange {
	ch := admin.AppChange{}
	f := cmd.Flags().Changed
	if f("name") {
		ch.ClientName = &md.ClientName
	}
	if f("type") || f("auth-method") {
		ch.TokenEndpointAuthMethod = &md.TokenEndpointAuthMethod
	}
	if f("scope") {
		ch.Scope = &md.Scope
	}
	if f("redirect-uri") {
		ch.RedirectURIs = &md.RedirectURIs
	}
	if f("grant-type") || len(cur.Metadata.GrantTypes) == 0 {
		ch.GrantTypes = &md.GrantTypes
	}
	if f("post-logout-redirect-uri") {
		ch.PostLogoutRedirectURIs = &md.PostLogoutRedirectURIs
	}
	if f("initiate-login-uri") {
		ch.InitiateLoginURI = &md.InitiateLoginURI
	}
	if f("jwks-uri") {
		ch.JWKSURI = &md.JWKSURI
	}
	if f("jwks-file") {
		j := md.JWKS
		ch.JWKS = &j
	}
	for name, pair := range map[string]struct {
		dst **bool
		v   bool
	}{"introspect-any": {&ch.IntrospectAny, m.introspectAny}, "may-launch": {&ch.MayLaunch, m.mayLaunch}, "admin": {&ch.Admin, m.admin},
		"pkce-exempt": {&ch.PKCEExempt, m.pkceExempt}, "require-par": {&ch.RequirePAR, m.requirePAR}} {
		if f(name) {
			v := pair.v
			*pair.dst = &v
		}
	}
	return ch
}

// ---- user ----

// userArg is the user a user subcommand names: the argument or --username.
func userArg(cmd *cobra.Command, args []string) (string, error) {
	name, _ := cmd.Flags().GetString("username")
	switch {
	case len(args) == 1 && name != "" && !strings.EqualFold(args[0], name):
		return "", fmt.Errorf("name the user once: as the argument or with --username, not both")
	case len(args) == 1:
		return args[0], nil
	case name == "":
		return "", fmt.Errorf("which user? give the username as the argument or with --username")
	}
	return name, nil
}

// stdinPassword reads --password-stdin as the local commands do.
func stdinPassword(cmd *cobra.Command, example string) (string, error) {
	if cmd.Flags().Changed("password") {
		return "", fmt.Errorf("--password is not accepted: a password on the command line ends up in shell history and in the process list; pipe it in with --password-stdin, e.g.\n  %s", example)
	}
	if on, _ := cmd.Flags().GetBool("password-stdin"); !on {
		return "", fmt.Errorf("--password-stdin is required; pipe the password in, e.g.\n  %s", example)
	}
	line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("--password-stdin: reading standard input: %w", err)
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", fmt.Errorf("--password-stdin: standard input is empty; pipe the password in, e.g.\n  %s", example)
	}
	return line, nil
}

func remoteUserCommands(g *globals) map[string]remoteFunc {
	onUser := func(act func(cmd *cobra.Command, c *adminClient, name string) error) remoteFunc {
		return func(cmd *cobra.Command, args []string, c *adminClient) error {
			name, err := userArg(cmd, args)
			if err != nil {
				return err
			}
			return act(cmd, c, name)
		}
	}
	status := func(path string) remoteFunc {
		return onUser(func(cmd *cobra.Command, c *adminClient, name string) error {
			var u admin.User
			if err := c.do(cmd.Context(), http.MethodPost, "/users/"+esc(name)+path, nil, &u); err != nil {
				return err
			}
			v := u
			return g.print(v, func(w io.Writer) {
				fmt.Fprintf(w, "user %s is now %s", u.Username, u.Status)
				if path == "/disable" {
					fmt.Fprint(w, ": sign-in is refused, their login sessions ended and every token issued to them so far is revoked")
				}
				fmt.Fprintln(w)
			})
		})
	}
	return map[string]remoteFunc{
		"create": func(cmd *cobra.Command, _ []string, c *adminClient) error {
			f := cmd.Flags()
			username, _ := f.GetString("username")
			role, _ := f.GetString("role")
			fhirUser, _ := f.GetString("fhir-user")
			if username == "" || role == "" {
				return fmt.Errorf("--username and --role are required")
			}
			password, err := stdinPassword(cmd, `printf '%s\n' "$PASSWORD" | smartgate user create --server URL --username `+username+` --role `+role+` --password-stdin`)
			if err != nil {
				return err
			}
			var u admin.User
			if err := c.do(cmd.Context(), http.MethodPost, "/users", admin.NewUser{Username: username, Role: role, FHIRUser: fhirUser, Password: password}, &u); err != nil {
				return err
			}
			v := u
			return g.print(v, func(w io.Writer) { printUser(w, v) })
		},
		"list": func(cmd *cobra.Command, _ []string, c *adminClient) error {
			var us []admin.User
			if err := c.do(cmd.Context(), http.MethodGet, "/users", nil, &us); err != nil {
				return err
			}
			vs := make([]userView, 0, len(us))
			for _, u := range us {
				vs = append(vs, u)
			}
			return g.print(vs, func(w io.Writer) {
				tw := newTable(w)
				fmt.Fprintln(tw, "USERNAME\tROLE\tFHIR USER\tSTATUS\tTOTP\tLAST LOGIN")
				for _, v := range vs {
					last := "never"
					if v.LastLoginAt != nil {
						last = v.LastLoginAt.Format(time.RFC3339)
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%v\t%s\n", v.Username, v.Role, orDash(v.FHIRUser), v.Status, v.TOTPEnabled, last)
				}
				tw.Flush()
			})
		},
		"show": onUser(func(cmd *cobra.Command, c *adminClient, name string) error {
			var u admin.User
			if err := c.do(cmd.Context(), http.MethodGet, "/users/"+esc(name), nil, &u); err != nil {
				return err
			}
			v := u
			return g.print(v, func(w io.Writer) { printUser(w, v) })
		}),
		"enable":  status("/enable"),
		"disable": status("/disable"),
		"set-password": onUser(func(cmd *cobra.Command, c *adminClient, name string) error {
			password, err := stdinPassword(cmd, `printf '%s\n' "$PASSWORD" | smartgate user set-password `+name+` --server URL --password-stdin`)
			if err != nil {
				return err
			}
			if err := c.do(cmd.Context(), http.MethodPost, "/users/"+esc(name)+"/password", map[string]string{"password": password}, nil); err != nil {
				return err
			}
			return g.print(map[string]string{"username": name, "password": "changed"}, func(w io.Writer) {
				fmt.Fprintf(w, "password of %s changed; their login sessions ended\n", name)
			})
		}),
		"totp-enroll": onUser(func(cmd *cobra.Command, c *adminClient, name string) error {
			var e admin.TOTPEnrollment
			if err := c.do(cmd.Context(), http.MethodPost, "/users/"+esc(name)+"/totp", nil, &e); err != nil {
				return err
			}
			return g.print(e, func(w io.Writer) {
				fmt.Fprintf(w, "two-factor login is on for %s. Give them this, once (it is not shown again):\n\n  %s\n\nor the secret to type into the authenticator app: %s\n", e.Username, e.OTPAuthURL, e.Secret)
			})
		}),
		"totp-disable": onUser(func(cmd *cobra.Command, c *adminClient, name string) error {
			if err := c.do(cmd.Context(), http.MethodDelete, "/users/"+esc(name)+"/totp", nil, nil); err != nil {
				return err
			}
			return g.print(map[string]any{"username": name, "totp_enabled": false}, func(w io.Writer) {
				fmt.Fprintf(w, "two-factor login is off for %s\n", name)
			})
		}),
		"link": onUser(func(cmd *cobra.Command, c *adminClient, name string) error {
			provider, _ := cmd.Flags().GetString("provider")
			subject, _ := cmd.Flags().GetString("subject")
			if provider == "" || subject == "" {
				return fmt.Errorf("--provider and --subject are required: the provider's id in smartgate and the \"sub\" it gives the user")
			}
			var u admin.User
			if err := c.do(cmd.Context(), http.MethodPost, "/users/"+esc(name)+"/links", map[string]string{"provider": provider, "subject": subject}, &u); err != nil {
				return err
			}
			res := map[string]any{"username": u.Username, "provider": provider, "subject": subject}
			return g.print(res, func(w io.Writer) {
				fmt.Fprintf(w, "user %s is linked to subject %s at provider %s\n", u.Username, subject, provider)
			})
		}),
	}
}

// ---- key ----

func remoteKeyCommands(g *globals) map[string]remoteFunc {
	return map[string]remoteFunc{
		"list": func(cmd *cobra.Command, _ []string, c *adminClient) error {
			var ks []admin.Key
			if err := c.do(cmd.Context(), http.MethodGet, "/keys", nil, &ks); err != nil {
				return err
			}
			infos := make([]keys.Info, 0, len(ks))
			for _, k := range ks {
				infos = append(infos, k.Info)
			}
			return g.print(ks, func(w io.Writer) { printKeys(w, infos) })
		},
		"rotate": func(cmd *cobra.Command, _ []string, c *adminClient) error {
			alg, _ := cmd.Flags().GetString("alg")
			var in any
			if alg != "" {
				in = map[string]string{"alg": alg}
			}
			var out []admin.RotatedKey
			if err := c.do(cmd.Context(), http.MethodPost, "/keys/rotate", in, &out); err != nil {
				return err
			}
			return g.print(out, func(w io.Writer) {
				for _, k := range out {
					fmt.Fprintf(w, "added %s key %s: published now, signs from %s\n", k.Alg, k.KID, k.ActiveAt.Format(time.RFC3339))
				}
			})
		},
	}
}
