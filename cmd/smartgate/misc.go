package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"

	"smartgate/internal/app"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3".
var version = "dev"

func versionCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version of smartgate",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			info := map[string]string{"version": version, "go": runtime.Version(), "platform": runtime.GOOS + "/" + runtime.GOARCH}
			if bi, ok := debug.ReadBuildInfo(); ok {
				for _, s := range bi.Settings {
					if s.Key == "vcs.revision" {
						info["commit"] = s.Value
					}
				}
			}
			return g.print(info, func(w io.Writer) {
				fmt.Fprintf(w, "smartgate %s (%s, %s)", info["version"], info["go"], info["platform"])
				if c := info["commit"]; c != "" {
					fmt.Fprintf(w, " commit %s", c)
				}
				fmt.Fprintln(w)
			})
		},
	}
}

func migrateCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "migrate",
		Short: "Apply pending database migrations (serve also does this at start)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load(cmd)
			if err != nil {
				return err
			}
			if err := cfg.ValidateData(); err != nil {
				return err
			}
			st, err := app.OpenStore(cmd.Context(), &cfg.Config, 2)
			if err != nil {
				return err
			}
			defer st.Close()
			applied, err := st.Migrate(cmd.Context())
			if err != nil {
				return err
			}
			built, err := st.BuildDeferredIndexes(cmd.Context())
			if err != nil {
				return fmt.Errorf("building the search indexes a bulk load left unbuilt: %w", err)
			}
			cur, latest, err := st.SchemaVersion(cmd.Context())
			if err != nil {
				return err
			}
			res := map[string]any{"dialect": st.Dialect(), "applied": applied, "version": cur, "latest": latest}
			if len(built) > 0 {
				res["indexes_built"] = built
			}
			return g.print(res, func(w io.Writer) {
				if len(built) > 0 {
					fmt.Fprintf(w, "built the search indexes an interrupted seed or import left unbuilt: %s\n", strings.Join(built, ", "))
				}
				if len(applied) == 0 {
					fmt.Fprintf(w, "%s database is up to date (schema version %d)\n", st.Dialect(), cur)
					return
				}
				fmt.Fprintf(w, "applied migration(s) %v; %s database now at schema version %d\n", applied, st.Dialect(), cur)
			})
		},
	}
}
