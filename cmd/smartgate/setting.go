package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/spf13/cobra"

	"smartgate/internal/admin"
	"smartgate/internal/config"
	"smartgate/internal/identity"
)

func settingCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "setting",
		Short: "Show and change the runtime settings (registration policy, password grant, token lifetimes)",
		Long: `Runtime settings can change while smartgate runs; every node applies a change
within a second. They are stored in the database and rank between the
configuration file and the environment: defaults < file < database <
environment < flags, so a key set by SMARTGATE_* or a flag is pinned and
cannot be changed here (docs/configuration.md, "Runtime settings").

Keys: ` + strings.Join(config.RuntimeKeys, ", "),
	}
	cmd.AddCommand(
		&cobra.Command{Use: "list", Short: "List the runtime settings, their values and where they come from", Args: cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				return withSettings(g, cmd, func(ctx context.Context, svc *admin.Service, _ admin.Actor) error {
					ss, err := svc.ListSettings(ctx)
					if err != nil {
						return err
					}
					return g.printSettings(ss)
				})
			}},
		&cobra.Command{Use: "set KEY VALUE", Short: "Store a runtime setting (VALUE \"\" turns the password grant off)", Args: cobra.ExactArgs(2),
			Example: `  smartgate setting set tokens.access_token_ttl 30m
  smartgate setting set registration.policy token --server https://ehr.example.org`,
			RunE: func(cmd *cobra.Command, args []string) error {
				return withSettings(g, cmd, func(ctx context.Context, svc *admin.Service, a admin.Actor) error {
					s, err := svc.SetSetting(ctx, a, args[0], args[1])
					if err != nil {
						return err
					}
					return g.printSetting(s)
				})
			}},
		&cobra.Command{Use: "reset KEY", Short: "Forget a stored runtime setting: back to the file's value or the default", Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				return withSettings(g, cmd, func(ctx context.Context, svc *admin.Service, a admin.Actor) error {
					s, err := svc.ResetSetting(ctx, a, args[0])
					if err != nil {
						return err
					}
					return g.printSetting(s)
				})
			}},
	)
	addRemote(cmd, g, map[string]remoteFunc{
		"list": func(cmd *cobra.Command, _ []string, c *adminClient) error {
			var ss []admin.Setting
			if err := c.do(cmd.Context(), http.MethodGet, "/settings", nil, &ss); err != nil {
				return err
			}
			return g.printSettings(ss)
		},
		"set": func(cmd *cobra.Command, args []string, c *adminClient) error {
			var s admin.Setting
			if err := c.do(cmd.Context(), http.MethodPut, "/settings/"+esc(args[0]), map[string]string{"value": args[1]}, &s); err != nil {
				return err
			}
			return g.printSetting(s)
		},
		"reset": func(cmd *cobra.Command, args []string, c *adminClient) error {
			var s admin.Setting
			if err := c.do(cmd.Context(), http.MethodDelete, "/settings/"+esc(args[0]), nil, &s); err != nil {
				return err
			}
			return g.printSetting(s)
		},
	})
	return cmd
}

// withSettings runs fn on this machine's data (local mode), as the
// administrator "cli"; a running server applies the change within a
// second through the change sequence.
func withSettings(g *globals, cmd *cobra.Command, fn func(ctx context.Context, svc *admin.Service, a admin.Actor) error) error {
	a, err := openData(g, cmd, false)
	if err != nil {
		return err
	}
	defer a.Close()
	ctx := cmd.Context()
	st := admin.NewSettings(a.Store, a.Cfg, config.NewLive(&a.Cfg.Config), nil)
	if err := st.Load(ctx); err != nil {
		return err
	}
	svc := admin.New(admin.Deps{Store: a.Store, Settings: st, Audit: identity.Direct{Store: a.Store}})
	return fn(ctx, svc, admin.Actor{ID: "cli", Name: "cli", Via: "cli"})
}

func (g *globals) printSettings(ss []admin.Setting) error {
	return g.print(ss, func(w io.Writer) {
		tw := newTable(w)
		fmt.Fprintln(tw, "KEY\tVALUE\tFROM\tSTORED")
		for _, s := range ss {
			from := s.Source
			if s.Pinned {
				from += " (pinned: " + s.PinnedBy + ")"
			}
			stored := "-"
			if s.Stored != nil {
				stored = orEmpty(s.Stored.Value) + " by " + s.Stored.UpdatedBy
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", s.Key, orEmpty(s.Value), from, stored)
		}
		tw.Flush()
	})
}

func (g *globals) printSetting(s admin.Setting) error {
	return g.print(s, func(w io.Writer) {
		fmt.Fprintf(w, "%s is %s (from %s); every node applies it within a second\n", s.Key, orEmpty(s.Value), s.Source)
	})
}

func orEmpty(s string) string {
	if s == "" {
		return "(empty)"
	}
	return s
}
