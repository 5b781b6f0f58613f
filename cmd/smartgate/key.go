package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"smartgate/internal/admin"
	"smartgate/internal/app"
	"smartgate/internal/identity"
	"smartgate/internal/keys"
	"smartgate/internal/problem"
)

func keyCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "key",
		Short: "Manage signing keys (list, rotate, rewrap)",
		Long: `Signing keys are generated at first start (ES256 for access tokens, RS256 for
id_tokens), stored encrypted under the key-encryption key (KEK), and published
at /oauth2/jwks. A running server sees changes made here within a second.`,
	}
	cmd.AddCommand(keyListCmd(g), keyRotateCmd(g), keyRewrapCmd(g))
	addRemote(cmd, g, remoteKeyCommands(g))
	return cmd
}

func openData(g *globals, cmd *cobra.Command, initKeys bool) (*app.App, error) {
	cfg, err := g.load(cmd)
	if err != nil {
		return nil, err
	}
	if err := cfg.ValidateData(); err != nil {
		return nil, err
	}
	return app.Open(cmd.Context(), cfg, g.logger(&cfg.Config, slog.LevelWarn), app.Options{InitKeys: initKeys})
}

func keyListCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List signing keys with their state and age",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			a, err := openData(g, cmd, true)
			if err != nil {
				return err
			}
			defer a.Close()
			list := a.Keys.List()
			return g.print(list, func(w io.Writer) { printKeys(w, list) })
		},
	}
}

func printKeys(w io.Writer, list []keys.Info) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KID\tALG\tSTATE\tCREATED\tSIGNS FROM\tPUBLISHED UNTIL\tUSABLE")
	for _, k := range list {
		until := "-"
		if !k.PublishedUntil.IsZero() {
			until = k.PublishedUntil.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%v\n", k.KID, k.Alg, k.State, k.CreatedAt.Format(time.RFC3339), k.ActiveAt.Format(time.RFC3339), until, k.Usable)
	}
	tw.Flush()
}

func keyRotateCmd(g *globals) *cobra.Command {
	var alg string
	cmd := &cobra.Command{
		Use:   "rotate",
		Short: "Add new signing keys (published now, signing after keys.jwks_max_age)",
		Long: `Add a new key for both algorithms, or one with --alg. The new key is published
in the JWKS at once and signs only after keys.jwks_max_age, so every client's
cached JWKS knows it first. The old key stays published until the longest
token lifetime has passed after it stopped signing.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var algs []string // both
			if alg != "" {
				switch strings.ToUpper(alg) {
				case keys.ES256, keys.RS256:
					algs = []string{strings.ToUpper(alg)}
				default:
					return fmt.Errorf("--alg %q: use ES256 (access tokens) or RS256 (id_tokens)", alg)
				}
			}
			a, err := openData(g, cmd, true)
			if err != nil {
				return err
			}
			defer a.Close()
			// The admin console's rotation, recorded (key.rotate) as the
			// administrator "cli".
			svc := admin.New(admin.Deps{Store: a.Store, Keys: a.Keys, Audit: identity.Direct{Store: a.Store}})
			res, err := svc.RotateKeys(cmd.Context(), admin.Actor{ID: "cli", Name: "cli", Via: "cli"}, algs)
			if err != nil {
				return err
			}
			return g.print(res, func(w io.Writer) {
				for _, k := range res {
					fmt.Fprintf(w, "added %s key %s: published now, signs from %s\n", k.Alg, k.KID, k.ActiveAt.Format(time.RFC3339))
				}
			})
		},
	}
	cmd.Flags().StringVar(&alg, "alg", "", "rotate only this algorithm: ES256 or RS256")
	return cmd
}

func keyRewrapCmd(g *globals) *cobra.Command {
	var newFile string
	cmd := &cobra.Command{
		Use:   "rewrap",
		Short: "Re-encrypt every signing key under a new key-encryption key (KEK)",
		Long: `Re-encrypt every stored private key under a new KEK.

  smartgate key rewrap
      generates a new KEK, re-encrypts, and replaces kek_file with it (the
      KEK must come from kek_file).
  smartgate key rewrap --new-kek-file NEW
      re-encrypts under the KEK in NEW (mode 0600). Then give every node that
      KEK (replace its kek_file, or set SMARTGATE_KEK).

Running nodes keep working: they hold the keys they already decrypted and
re-read their kek_file when a key does not open under the KEK they have.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			a, err := openData(g, cmd, true)
			if err != nil {
				return err
			}
			defer a.Close()
			cfg := a.Cfg
			var next *keys.KEK
			var pending string // a temporary file to rename over kek_file after the rewrap
			if newFile != "" {
				next, err = keys.LoadKEKFile(newFile)
				if err != nil {
					return err
				}
			} else {
				if cfg.KEK != "" || cfg.KEKFile == "" {
					return problem.New(problem.KEKMissing, "the KEK comes from SMARTGATE_KEK, so rewrap cannot replace it; write a new KEK to a file (head -c 32 /dev/urandom | base64 > new.kek && chmod 600 new.kek) and run: smartgate key rewrap --new-kek-file new.kek")
				}
				text := keys.GenerateKEK()
				next, _ = keys.ParseKEK(text, cfg.KEKFile)
				pending = filepath.Join(filepath.Dir(cfg.KEKFile), ".kek.new")
				if err := keys.WriteKEKFile(pending, text, false); err != nil {
					return fmt.Errorf("writing the new KEK beside %s: %w", cfg.KEKFile, err)
				}
			}
			old, err := app.LoadKEK(&cfg.Config)
			if err != nil {
				if pending != "" {
					os.Remove(pending)
				}
				return err
			}
			n, err := a.Keys.Rewrap(cmd.Context(), next)
			if err != nil {
				if pending != "" {
					os.Remove(pending)
				}
				return err
			}
			// Users' TOTP secrets are sealed under the KEK too.
			totp, err := identityService(a).RewrapTOTP(cmd.Context(), old, next)
			if err != nil {
				return fmt.Errorf("the signing keys are sealed under the new KEK (in %s) but re-sealing TOTP secrets failed: %w; run the command again with --new-kek-file %s", firstNonEmpty(pending, newFile), err, firstNonEmpty(pending, newFile))
			}
			if pending != "" {
				if err := os.Rename(pending, cfg.KEKFile); err != nil {
					return fmt.Errorf("the keys are now sealed under the new KEK in %s, but replacing %s failed: %w; move it into place by hand", pending, cfg.KEKFile, err)
				}
			}
			cliAudit(cmd.Context(), a, "key.rewrap", "", fmt.Sprintf(`{"rewrapped":%d,"totp_secrets":%d,"kek_id":%q}`, n, totp, next.ID))
			res := map[string]any{"rewrapped": n, "totp_secrets": totp, "kek_id": next.ID, "kek_source": next.Source}
			return g.print(res, func(w io.Writer) {
				fmt.Fprintf(w, "re-encrypted %d signing key(s) and %d TOTP secret(s) under KEK %s (%s)\n", n, totp, next.ID, next.Source)
				if newFile != "" {
					fmt.Fprintln(w, "Now give every node this KEK: replace its kek_file with this file, or set SMARTGATE_KEK.")
				}
			})
		},
	}
	cmd.Flags().StringVar(&newFile, "new-kek-file", "", "file holding the new KEK (32 bytes, base64, mode 0600)")
	return cmd
}

func firstNonEmpty(xs ...string) string {
	for _, x := range xs {
		if x != "" {
			return x
		}
	}
	return ""
}
