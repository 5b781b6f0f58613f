package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"smartgate/internal/admin"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"smartgate/internal/app"
	"smartgate/internal/identity"
	"smartgate/internal/keys"
	"smartgate/internal/store"
)

func userCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "user",
		Short: "Manage the users who sign in (practitioners, patients, related persons, admins)",
		Long: `Create and administer local users. Passwords are read from standard input
(--password-stdin), never from the command line. A running server sees every
change within a second. docs/users.md explains roles, password rules, login
throttling and two-factor login.`,
	}
	cmd.AddCommand(userCreateCmd(g), userListCmd(g), userShowCmd(g),
		userStatusCmd(g, "disable", store.UserDisabled, "Disable a user: sign-in refused, sessions ended, tokens revoked"),
		userStatusCmd(g, "enable", store.UserEnabled, "Enable a disabled user"),
		userSetPasswordCmd(g), userTOTPEnrollCmd(g), userTOTPDisableCmd(g), userLinkCmd(g))
	addRemote(cmd, g, remoteUserCommands(g))
	return cmd
}

// users opens the data and the identity service on it, auditing as "cli".
func users(g *globals, cmd *cobra.Command) (*app.App, *identity.Service, error) {
	a, err := openData(g, cmd, false)
	if err != nil {
		return nil, nil, err
	}
	return a, identityService(a), nil
}

func identityService(a *app.App) *identity.Service {
	cfg := &a.Cfg.Config
	return identity.FromConfig(a.Store, cfg, func() (*keys.KEK, error) { return app.LoadKEK(cfg) }, identity.Direct{Store: a.Store})
}

// userView is how the CLI shows a user (the admin API's shape): never the
// password hash or the TOTP secret.
type userView = admin.User

func viewUser(u store.User, links []store.UserLink) userView { return admin.UserOf(u, links) }

func printUser(w io.Writer, v userView) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "username:\t%s\n", v.Username)
	fmt.Fprintf(tw, "id:\t%s\t(the \"sub\" of the user's tokens)\n", v.ID)
	fmt.Fprintf(tw, "role:\t%s\n", v.Role)
	if v.FHIRUser != "" {
		fmt.Fprintf(tw, "fhirUser:\t%s\n", v.FHIRUser)
	}
	fmt.Fprintf(tw, "status:\t%s\n", v.Status)
	signIn := "password"
	if !v.HasPassword {
		signIn = "no password (linked providers only)"
	}
	if v.TOTPEnabled {
		signIn += " + TOTP code"
	}
	fmt.Fprintf(tw, "sign-in:\t%s\n", signIn)
	for _, l := range v.Links {
		fmt.Fprintf(tw, "linked:\t%s subject %s\n", l.Provider, l.Subject)
	}
	fmt.Fprintf(tw, "created:\t%s\n", v.CreatedAt.Format(time.RFC3339))
	if v.LastLoginAt != nil {
		fmt.Fprintf(tw, "last login:\t%s\n", v.LastLoginAt.Format(time.RFC3339))
	}
	tw.Flush()
}

// passwordFlags are --password-stdin and the refused --password.
type passwordFlags struct {
	stdin    bool
	password string
}

func (p *passwordFlags) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.BoolVar(&p.stdin, "password-stdin", false, "read the password from standard input (the first line)")
	f.StringVar(&p.password, "password", "", "refused: use --password-stdin")
	_ = f.MarkHidden("password")
}

// read returns the password from standard input, refusing --password:
// a password on the command line lands in shell history and in ps.
func (p *passwordFlags) read(cmd *cobra.Command, example string) (string, error) {
	if cmd.Flags().Changed("password") {
		return "", fmt.Errorf("--password is not accepted: a password on the command line ends up in shell history and in the process list; pipe it in with --password-stdin, e.g.\n  %s", example)
	}
	if !p.stdin {
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

func userCreateCmd(g *globals) *cobra.Command {
	var username, role, fhirUser string
	var pw passwordFlags
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create a user; the password comes from standard input",
		Example: `  printf '%s\n' "$PASSWORD" | smartgate user create --username ines.munoz \
      --role practitioner --fhir-user Practitioner/pra-ines-munoz --password-stdin
  smartgate user create --username amy.shaw --role patient \
      --fhir-user Patient/pat-amy-shaw --password-stdin < amy-password.txt`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if username == "" || role == "" {
				return fmt.Errorf("--username and --role are required (--role %s)", strings.Join(identity.Roles, ", "))
			}
			if err := identity.CheckRole(role); err != nil {
				return err
			}
			if err := identity.CheckFHIRUser(role, fhirUser); err != nil {
				return err
			}
			password, err := pw.read(cmd, `printf '%s\n' "$PASSWORD" | smartgate user create --username `+username+` --role `+role+` --password-stdin`)
			if err != nil {
				return err
			}
			a, svc, err := users(g, cmd)
			if err != nil {
				return err
			}
			defer a.Close()
			ctx := cmd.Context()
			u, err := svc.CreateUser(ctx, identity.NewUser{Username: username, Role: role, FHIRUser: fhirUser, Password: password}, "cli")
			if err != nil {
				return err
			}
			warnMissingRecord(ctx, g, a, fhirUser)
			v := viewUser(u, nil)
			return g.print(v, func(w io.Writer) { printUser(w, v) })
		},
	}
	f := cmd.Flags()
	f.StringVar(&username, "username", "", "sign-in name: 1 to 64 ASCII letters, digits and . _ @ + - (case does not matter)")
	f.StringVar(&role, "role", "", "practitioner, patient, related-person or admin")
	f.StringVar(&fhirUser, "fhir-user", "", "the user's FHIR record: Practitioner/ID, Patient/ID or RelatedPerson/ID as the role says (admin: none or Practitioner/ID)")
	pw.register(cmd)
	return cmd
}

// warnMissingRecord says on standard error when a fhirUser names no FHIR
// resource (yet): allowed, since records may be loaded later, but worth
// knowing.
func warnMissingRecord(ctx context.Context, g *globals, a *app.App, ref string) {
	typ, id, ok := strings.Cut(ref, "/")
	if !ok {
		return
	}
	if _, err := a.Store.ReadResource(ctx, typ, id, nil); errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrGone) {
		fmt.Fprintf(g.stderr, "warning: %s does not exist in the FHIR data (yet); the user's fhirUser will point nowhere until it does\n", ref)
	}
}

func userListCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List users",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			a, err := openData(g, cmd, false)
			if err != nil {
				return err
			}
			defer a.Close()
			us, err := a.Store.ListUsers(cmd.Context())
			if err != nil {
				return err
			}
			vs := make([]userView, 0, len(us))
			for _, u := range us {
				vs = append(vs, viewUser(u, nil))
			}
			return g.print(vs, func(w io.Writer) {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
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
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// userAction builds a command that acts on one existing user, named as
// the argument or by --username: it opens the data, finds the user, runs
// act (which audits its change) and prints what act returns.
func userAction(g *globals, use, short string, act func(ctx context.Context, cmd *cobra.Command, svc *identity.Service, u store.User) (any, func(io.Writer), error)) *cobra.Command {
	var username string
	cmd := &cobra.Command{
		Use:   use + " [USERNAME]",
		Short: short,
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := username
			switch {
			case len(args) == 1 && name != "" && !strings.EqualFold(args[0], name):
				return fmt.Errorf("name the user once: as the argument or with --username, not both")
			case len(args) == 1:
				name = args[0]
			case name == "":
				return fmt.Errorf("which user? give the username as the argument or with --username")
			}
			a, svc, err := users(g, cmd)
			if err != nil {
				return err
			}
			defer a.Close()
			ctx := cmd.Context()
			u, err := svc.UserByName(ctx, name)
			if err != nil {
				return err
			}
			res, text, err := act(ctx, cmd, svc, u)
			if err != nil {
				return err
			}
			return g.print(res, text)
		},
	}
	cmd.Flags().StringVar(&username, "username", "", "the user (instead of the argument)")
	return cmd
}

func userShowCmd(g *globals) *cobra.Command {
	return userAction(g, "show", "Show a user and their linked provider identities",
		func(ctx context.Context, _ *cobra.Command, svc *identity.Service, u store.User) (any, func(io.Writer), error) {
			links, err := svc.Links(ctx, u.ID)
			if err != nil {
				return nil, nil, err
			}
			v := viewUser(u, links)
			return v, func(w io.Writer) { printUser(w, v) }, nil
		})
}

func userStatusCmd(g *globals, use, status, short string) *cobra.Command {
	return userAction(g, use, short, func(ctx context.Context, _ *cobra.Command, svc *identity.Service, u store.User) (any, func(io.Writer), error) {
		out, err := svc.SetStatus(ctx, u, status, "cli")
		if err != nil {
			return nil, nil, err
		}
		v := viewUser(out, nil)
		return v, func(w io.Writer) {
			fmt.Fprintf(w, "user %s is now %s", out.Username, out.Status)
			if status == store.UserDisabled {
				fmt.Fprint(w, ": sign-in is refused, their login sessions ended and every token issued to them so far is revoked")
			}
			fmt.Fprintln(w)
		}, nil
	})
}

func userSetPasswordCmd(g *globals) *cobra.Command {
	var pw passwordFlags
	cmd := userAction(g, "set-password", "Set a new password from standard input (ends the user's login sessions)",
		func(ctx context.Context, cmd *cobra.Command, svc *identity.Service, u store.User) (any, func(io.Writer), error) {
			password, err := pw.read(cmd, `printf '%s\n' "$PASSWORD" | smartgate user set-password `+u.Username+` --password-stdin`)
			if err != nil {
				return nil, nil, err
			}
			if err := svc.SetPassword(ctx, u, password, "cli"); err != nil {
				return nil, nil, err
			}
			return map[string]string{"username": u.Username, "password": "changed"}, func(w io.Writer) {
				fmt.Fprintf(w, "password of %s changed; their login sessions ended\n", u.Username)
			}, nil
		})
	cmd.Example = `  printf '%s\n' "$PASSWORD" | smartgate user set-password ines.munoz --password-stdin`
	pw.register(cmd)
	return cmd
}

func userTOTPEnrollCmd(g *globals) *cobra.Command {
	return userAction(g, "totp-enroll", "Turn on two-factor login (TOTP) and print the authenticator link, once",
		func(ctx context.Context, _ *cobra.Command, svc *identity.Service, u store.User) (any, func(io.Writer), error) {
			e, err := svc.EnrollTOTP(ctx, u, "cli")
			if err != nil {
				return nil, nil, err
			}
			res := map[string]string{"username": u.Username, "otpauth_url": e.URL, "secret": e.Secret}
			return res, func(w io.Writer) {
				fmt.Fprintf(w, "two-factor login is on for %s. Give them this, once (it is not shown again):\n\n", u.Username)
				fmt.Fprintf(w, "  %s\n\n", e.URL)
				fmt.Fprintf(w, "Open it on the phone, or make a QR code of it (e.g. qrencode -t ansiutf8 '<link>'),\n")
				fmt.Fprintf(w, "or type the secret into the authenticator app: %s\n", e.Secret)
				fmt.Fprintf(w, "From now on %s signs in with the password and the app's 6-digit code.\n", u.Username)
			}, nil
		})
}

func userTOTPDisableCmd(g *globals) *cobra.Command {
	return userAction(g, "totp-disable", "Turn off two-factor login (TOTP) and forget the secret",
		func(ctx context.Context, _ *cobra.Command, svc *identity.Service, u store.User) (any, func(io.Writer), error) {
			if err := svc.DisableTOTP(ctx, u, "cli"); err != nil {
				return nil, nil, err
			}
			return map[string]any{"username": u.Username, "totp_enabled": false}, func(w io.Writer) {
				fmt.Fprintf(w, "two-factor login is off for %s\n", u.Username)
			}, nil
		})
}

func userLinkCmd(g *globals) *cobra.Command {
	var provider, subject string
	cmd := userAction(g, "link", "Link the user to their identity at an upstream OpenID Connect provider",
		func(ctx context.Context, _ *cobra.Command, svc *identity.Service, u store.User) (any, func(io.Writer), error) {
			if provider == "" || subject == "" {
				return nil, nil, fmt.Errorf("--provider and --subject are required: the provider's id in smartgate and the \"sub\" it gives the user")
			}
			l, err := svc.Link(ctx, u, provider, subject, "cli")
			if err != nil {
				return nil, nil, err
			}
			res := map[string]any{"username": u.Username, "provider": l.Provider, "subject": l.Subject, "created_at": l.CreatedAt}
			return res, func(w io.Writer) {
				fmt.Fprintf(w, "user %s is linked to subject %s at provider %s\n", u.Username, l.Subject, l.Provider)
			}, nil
		})
	cmd.Example = `  smartgate user link --username ines.munoz --provider keycloak --subject 5f0c1a7e-0d43-4b7e-9f1e-3c2a9d8b7e61`
	cmd.Flags().StringVar(&provider, "provider", "", "the upstream provider's id")
	cmd.Flags().StringVar(&subject, "subject", "", "the provider's \"sub\" claim for this user")
	return cmd
}

// ensureDevUsers makes the dev demo users exist (serve --dev) and shows
// their passwords on standard output the first time only; later starts
// name the file that keeps them. Never into the log stream.
func ensureDevUsers(ctx context.Context, g *globals, a *app.App) error {
	path := filepath.Join(a.Cfg.DataDir, identity.DevUsersFile)
	dus, created, err := identityService(a).EnsureDevUsers(ctx, path)
	if err != nil {
		return err
	}
	if !created {
		fmt.Fprintf(g.stdout, "demo users and their passwords: %s\n", path)
		return nil
	}
	fmt.Fprintf(g.stdout, "demo users (kept in %s, mode 0600; passwords shown only this once):\n", path)
	tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  ROLE\tUSERNAME\tPASSWORD\tFHIR USER")
	for _, u := range dus {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", u.Role, u.Username, u.Password, orDash(u.FHIRUser))
	}
	return tw.Flush()
}
