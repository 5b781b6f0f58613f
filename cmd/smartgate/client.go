package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"smartgate/internal/admin"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"smartgate/internal/app"
	"smartgate/internal/clientkeys"
	"smartgate/internal/oauth"
	"smartgate/internal/store"
)

func clientCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "client",
		Short: "Manage OAuth clients (apps and backend services)",
		Long: `Register and administer OAuth clients. Clients created here are enabled and
verified at once; self-registered ones follow the approval policy
(docs/clients.md). A running server sees every change within a second.`,
	}
	cmd.AddCommand(clientCreateCmd(g), clientListCmd(g), clientShowCmd(g), clientUpdateCmd(g),
		clientStatusCmd(g, "enable", store.ClientEnabled, "Enable (approve) a client"),
		clientStatusCmd(g, "disable", store.ClientDisabled, "Disable a client and revoke every token it holds"),
		clientRotateSecretCmd(g), clientDeleteCmd(g), clientInitialTokenCmd(g))
	addRemote(cmd, g, remoteClientCommands(g))
	return cmd
}

// registry opens the data and a client registry on it.
func registry(g *globals, cmd *cobra.Command) (*app.App, *oauth.Registry, error) {
	a, err := openData(g, cmd, false)
	if err != nil {
		return nil, nil, err
	}
	fetcher := clientkeys.New(clientkeys.Options{AllowPrivate: a.Cfg.Dev})
	return a, oauth.NewRegistry(a.Store, fetcher, &a.Cfg.Config, nil), nil
}

// cliAudit records an administrator's action at once (no batching: the
// command ends right after).
func cliAudit(ctx context.Context, a *app.App, action, clientID, detail string) {
	if detail == "" {
		detail = "{}"
	}
	_ = a.Store.AppendAudit(ctx, []store.AuditEvent{{Time: time.Now().UTC(), Actor: "cli", ClientID: clientID, Action: action, Outcome: "success", Detail: detail}})
}

// clientView is how the CLI shows a client (the admin API's shape).
type clientView = admin.App

func view(c *oauth.Client, secret string) clientView {
	v := admin.AppOf(c.Client)
	v.ClientSecret = secret
	return v
}

func printClient(w io.Writer, v clientView) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "client_id:\t%s\n", v.ClientID)
	if v.ClientSecret != "" {
		fmt.Fprintf(tw, "client_secret:\t%s\t(shown once: store it now)\n", v.ClientSecret)
	}
	fmt.Fprintf(tw, "name:\t%s\n", v.Metadata.ClientName)
	fmt.Fprintf(tw, "type:\t%s (token_endpoint_auth_method %s)\n", v.Type, v.Metadata.TokenEndpointAuthMethod)
	verified := "verified"
	if !v.Verified {
		verified = "unverified"
	}
	fmt.Fprintf(tw, "status:\t%s, %s\n", v.Status, verified)
	fmt.Fprintf(tw, "scope:\t%s\n", v.Metadata.Scope)
	fmt.Fprintf(tw, "grant_types:\t%s\n", strings.Join(v.Metadata.GrantTypes, " "))
	if len(v.Metadata.RedirectURIs) > 0 {
		fmt.Fprintf(tw, "redirect_uris:\t%s\n", strings.Join(v.Metadata.RedirectURIs, " "))
	}
	if len(v.Metadata.PostLogoutRedirectURIs) > 0 {
		fmt.Fprintf(tw, "post_logout_redirect_uris:\t%s\n", strings.Join(v.Metadata.PostLogoutRedirectURIs, " "))
	}
	if v.Metadata.InitiateLoginURI != "" {
		fmt.Fprintf(tw, "initiate_login_uri:\t%s\n", v.Metadata.InitiateLoginURI)
	}
	if v.Metadata.JWKSURI != "" {
		fmt.Fprintf(tw, "jwks_uri:\t%s\n", v.Metadata.JWKSURI)
	}
	if len(v.Metadata.JWKS) > 0 {
		fmt.Fprintf(tw, "jwks:\t(inline, %d bytes)\n", len(v.Metadata.JWKS))
	}
	var flags []string
	for name, on := range map[string]bool{"introspect-any": v.IntrospectAny, "may-launch": v.MayLaunch, "admin": v.Admin, "pkce-exempt": v.PKCEExempt, "require-par": v.RequirePAR} {
		if on {
			flags = append(flags, name)
		}
	}
	if len(flags) > 0 {
		fmt.Fprintf(tw, "flags:\t%s\n", strings.Join(flags, " "))
	}
	fmt.Fprintf(tw, "created:\t%s by %s\n", v.CreatedAt.Format(time.RFC3339), v.CreatedBy)
	tw.Flush()
}

// metadataFlags are the flags create and update share.
type metadataFlags struct {
	name, typ, authMethod, scope, jwksURI, jwksFile string
	redirectURIs, grantTypes, postLogoutURIs        []string
	initiateLoginURI                                string
	introspectAny, mayLaunch, admin                 bool
	pkceExempt, requirePAR                          bool
}

func (m *metadataFlags) register(cmd *cobra.Command, create bool) {
	f := cmd.Flags()
	f.StringVar(&m.name, "name", "", "client_name shown to users")
	if create {
		f.StringVar(&m.typ, "type", "", "public, confidential-symmetric or confidential-asymmetric")
	}
	f.StringVar(&m.authMethod, "auth-method", "", "token_endpoint_auth_method (default from --type: none, client_secret_basic, private_key_jwt)")
	f.StringVar(&m.scope, "scope", "", "space-separated scopes the client may request")
	f.StringArrayVar(&m.redirectURIs, "redirect-uri", nil, "redirect URI (repeat for several)")
	f.StringArrayVar(&m.grantTypes, "grant-type", nil, "grant type: authorization_code, refresh_token, client_credentials, password (repeat)")
	f.StringVar(&m.jwksURI, "jwks-uri", "", "URL of the client's public keys (private_key_jwt)")
	f.StringVar(&m.jwksFile, "jwks-file", "", "file holding the client's public JWKS (private_key_jwt)")
	f.BoolVar(&m.introspectAny, "introspect-any", false, "a resource server: may introspect any token")
	f.BoolVar(&m.mayLaunch, "may-launch", false, "may create EHR launches (POST /oauth2/launch), e.g. an EHR integration or an app that launches itself")
	f.StringArrayVar(&m.postLogoutURIs, "post-logout-redirect-uri", nil, "where /oauth2/logout may send the browser after signing out (repeat)")
	f.StringVar(&m.initiateLoginURI, "initiate-login-uri", "", "the app's launch URL: EHR launches open it with ?iss=<FHIR base>&launch=<id>")
	f.BoolVar(&m.pkceExempt, "pkce-exempt", false, "a confidential client asking only for OpenID scopes (no FHIR access) may skip PKCE (OpenID conformance tests)")
	f.BoolVar(&m.requirePAR, "require-par", false, "authorize accepts only pushed requests (POST /oauth2/par) from this client")
	f.BoolVar(&m.admin, "admin", false, "may get the smartgate:admin scope (client_credentials)")
}

func (m *metadataFlags) apply(cmd *cobra.Command, md *store.ClientMetadata) error {
	ch := cmd.Flags().Changed
	if ch("name") {
		md.ClientName = m.name
	}
	if ch("type") {
		switch m.typ {
		case oauth.Public:
			md.TokenEndpointAuthMethod = "none"
		case oauth.ConfidentialSymmetric:
			md.TokenEndpointAuthMethod = "client_secret_basic"
		case oauth.ConfidentialAsymmetric:
			md.TokenEndpointAuthMethod = "private_key_jwt"
		default:
			return fmt.Errorf("--type %q: use public, confidential-symmetric or confidential-asymmetric", m.typ)
		}
	}
	if ch("auth-method") {
		md.TokenEndpointAuthMethod = m.authMethod
	}
	if ch("scope") {
		md.Scope = m.scope
	}
	if ch("redirect-uri") {
		md.RedirectURIs = m.redirectURIs
	}
	if ch("grant-type") {
		md.GrantTypes = m.grantTypes
	}
	if ch("post-logout-redirect-uri") {
		md.PostLogoutRedirectURIs = m.postLogoutURIs
	}
	if ch("initiate-login-uri") {
		md.InitiateLoginURI = m.initiateLoginURI
	}
	if ch("jwks-uri") {
		md.JWKSURI, md.JWKS = m.jwksURI, nil
	}
	if ch("jwks-file") {
		b, err := os.ReadFile(m.jwksFile)
		if err != nil {
			return fmt.Errorf("--jwks-file: %w", err)
		}
		md.JWKS, md.JWKSURI = json.RawMessage(b), ""
	}
	if len(md.GrantTypes) == 0 {
		md.GrantTypes = defaultGrants(md.Scope)
	}
	return nil
}

// defaultGrants picks grant types from the scopes: system/ scopes mean a
// backend service; anything else a user-facing app.
func defaultGrants(scopes string) []string {
	if strings.Contains(scopes, "system/") {
		return []string{"client_credentials"}
	}
	out := []string{"authorization_code"}
	if strings.Contains(scopes, "offline_access") || strings.Contains(scopes, "online_access") {
		out = append(out, "refresh_token")
	}
	return out
}

func clientCreateCmd(g *globals) *cobra.Command {
	var m metadataFlags
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Register a client (enabled and verified); prints client_id and any secret",
		Example: `  smartgate client create --name "Lab sync" --type confidential-asymmetric \
      --jwks-uri https://lab.example.org/.well-known/jwks.json --scope "system/Observation.cruds system/Patient.rs"
  smartgate client create --name "Patient app" --type public \
      --redirect-uri https://app.example.com/callback --scope "launch/patient openid fhirUser patient/*.rs offline_access"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !cmd.Flags().Changed("type") {
				return errors.New("--type is required: public, confidential-symmetric or confidential-asymmetric")
			}
			a, reg, err := registry(g, cmd)
			if err != nil {
				return err
			}
			defer a.Close()
			var md store.ClientMetadata
			if err := m.apply(cmd, &md); err != nil {
				return err
			}
			created, err := reg.Create(cmd.Context(), md, oauth.Options{ByAdmin: true, IntrospectAny: m.introspectAny, MayLaunch: m.mayLaunch, Admin: m.admin, PKCEExempt: m.pkceExempt, RequirePAR: m.requirePAR})
			if err != nil {
				return err
			}
			cliAudit(cmd.Context(), a, "client.create", created.Client.ID, fmt.Sprintf(`{"type":%q}`, created.Client.Type))
			v := view(created.Client, created.Secret)
			return g.print(v, func(w io.Writer) { printClient(w, v) })
		},
	}
	m.register(cmd, true)
	return cmd
}

func clientListCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List clients",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			a, err := openData(g, cmd, false)
			if err != nil {
				return err
			}
			defer a.Close()
			cs, err := a.Store.ListClients(cmd.Context())
			if err != nil {
				return err
			}
			vs := make([]clientView, 0, len(cs))
			for _, c := range cs {
				vs = append(vs, view(&oauth.Client{Client: c}, ""))
			}
			return g.print(vs, func(w io.Writer) {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "CLIENT_ID\tNAME\tTYPE\tSTATUS\tVERIFIED\tSCOPE")
				for _, v := range vs {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%v\t%s\n", v.ClientID, v.Metadata.ClientName, v.Type, v.Status, v.Verified, v.Metadata.Scope)
				}
				tw.Flush()
			})
		},
	}
}

func getClient(ctx context.Context, a *app.App, id string) (*oauth.Client, error) {
	c, err := a.Store.GetClient(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, oauth.NotFound(id)
	}
	if err != nil {
		return nil, err
	}
	return &oauth.Client{Client: c}, nil
}

func clientShowCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "show CLIENT_ID",
		Short: "Show a client",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := openData(g, cmd, false)
			if err != nil {
				return err
			}
			defer a.Close()
			c, err := getClient(cmd.Context(), a, args[0])
			if err != nil {
				return err
			}
			v := view(c, "")
			return g.print(v, func(w io.Writer) { printClient(w, v) })
		},
	}
}

func clientUpdateCmd(g *globals) *cobra.Command {
	var m metadataFlags
	cmd := &cobra.Command{
		Use:   "update CLIENT_ID",
		Short: "Change a client's metadata or flags (flags not given stay as they are)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, reg, err := registry(g, cmd)
			if err != nil {
				return err
			}
			defer a.Close()
			ctx := cmd.Context()
			c, err := getClient(ctx, a, args[0])
			if err != nil {
				return err
			}
			md := c.Metadata
			if err := m.apply(cmd, &md); err != nil {
				return err
			}
			updated, _, err := reg.Update(ctx, c.ID, md, true)
			if err != nil {
				return err
			}
			f := cmd.Flags()
			if f.Changed("introspect-any") || f.Changed("may-launch") || f.Changed("admin") || f.Changed("pkce-exempt") || f.Changed("require-par") {
				updated, err = reg.SetFlags(ctx, c.ID, func(sc *store.Client) {
					if f.Changed("introspect-any") {
						sc.IntrospectAny = m.introspectAny
					}
					if f.Changed("may-launch") {
						sc.MayLaunch = m.mayLaunch
					}
					if f.Changed("admin") {
						sc.Admin = m.admin
					}
					if f.Changed("pkce-exempt") {
						sc.PKCEExempt = m.pkceExempt
					}
					if f.Changed("require-par") {
						sc.RequirePAR = m.requirePAR
					}
				})
				if err != nil {
					return err
				}
			}
			cliAudit(ctx, a, "client.update", c.ID, "")
			v := view(updated, "")
			return g.print(v, func(w io.Writer) { printClient(w, v) })
		},
	}
	m.register(cmd, false)
	return cmd
}

// clientAction builds a command that acts on one existing client: it
// opens the data, checks the client exists, runs act, audits the action
// and prints what act returns.
func clientAction(g *globals, use, short, action string, act func(ctx context.Context, reg *oauth.Registry, id string) (any, func(io.Writer), error)) *cobra.Command {
	return &cobra.Command{
		Use:   use + " CLIENT_ID",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, reg, err := registry(g, cmd)
			if err != nil {
				return err
			}
			defer a.Close()
			ctx, id := cmd.Context(), args[0]
			if _, err := getClient(ctx, a, id); err != nil {
				return err
			}
			res, text, err := act(ctx, reg, id)
			if err != nil {
				return err
			}
			cliAudit(ctx, a, action, id, "")
			return g.print(res, text)
		},
	}
}

func clientStatusCmd(g *globals, use, status, short string) *cobra.Command {
	return clientAction(g, use, short, "client."+use, func(ctx context.Context, reg *oauth.Registry, id string) (any, func(io.Writer), error) {
		c, err := reg.SetStatus(ctx, id, status)
		if err != nil {
			return nil, nil, err
		}
		return view(c, ""), func(w io.Writer) {
			fmt.Fprintf(w, "client %s is now %s", c.ID, c.Status)
			if status == store.ClientDisabled {
				fmt.Fprint(w, "; every token it held is revoked")
			}
			fmt.Fprintln(w)
		}, nil
	})
}

func clientRotateSecretCmd(g *globals) *cobra.Command {
	return clientAction(g, "rotate-secret", "Issue a new client secret (the old one stops working at once)", "client.rotate_secret",
		func(ctx context.Context, reg *oauth.Registry, id string) (any, func(io.Writer), error) {
			secret, err := reg.RotateSecret(ctx, id)
			if err != nil {
				return nil, nil, err
			}
			return map[string]string{"client_id": id, "client_secret": secret}, func(w io.Writer) {
				fmt.Fprintf(w, "client_id:      %s\nclient_secret:  %s  (shown once: store it now)\n", id, secret)
			}, nil
		})
}

func clientDeleteCmd(g *globals) *cobra.Command {
	return clientAction(g, "delete", "Delete a client and revoke its tokens", "client.delete",
		func(ctx context.Context, reg *oauth.Registry, id string) (any, func(io.Writer), error) {
			if err := reg.Delete(ctx, id); err != nil {
				return nil, nil, err
			}
			return map[string]string{"deleted": id}, func(w io.Writer) { fmt.Fprintf(w, "deleted client %s\n", id) }, nil
		})
}

func clientInitialTokenCmd(g *globals) *cobra.Command {
	var expires time.Duration
	cmd := &cobra.Command{
		Use:   "initial-token",
		Short: "Create an initial access token for dynamic registration (registration.policy: token)",
		Long: `Create an RFC 7591 initial access token. A developer sends it as
Authorization: Bearer <token> with POST /oauth2/register. Only its hash is stored.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			a, err := openData(g, cmd, false)
			if err != nil {
				return err
			}
			defer a.Close()
			tok, _ := oauth.NewSecret()
			h := sha256.Sum256([]byte(tok))
			exp := time.Now().Add(expires).UTC()
			if err := a.Store.CreateInitialAccessToken(cmd.Context(), h[:], exp); err != nil {
				return err
			}
			cliAudit(cmd.Context(), a, "registration.initial_token", "", fmt.Sprintf(`{"expires_at":%q}`, exp.Format(time.RFC3339)))
			res := map[string]any{"initial_access_token": tok, "expires_at": exp}
			return g.print(res, func(w io.Writer) {
				fmt.Fprintf(w, "initial access token: %s\nvalid until %s; send it as Authorization: Bearer <token> to POST /oauth2/register\n", tok, exp.Format(time.RFC3339))
			})
		},
	}
	cmd.Flags().DurationVar(&expires, "expires", 7*24*time.Hour, "how long the token may be used")
	return cmd
}
