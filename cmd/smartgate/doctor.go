package main

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"smartgate/internal/doctor"
)

func doctorCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Check configuration, TLS, KEK, database, keys and clocks",
		Long: `Check the installation without changing it: configuration, TLS certificate
validity and expiry, KEK file permissions, database reachability and migration
level, signing-key ages, and clock sanity (against the database server's clock
on PostgreSQL). One line per check; exits non-zero when any check fails.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load(cmd)
			if err != nil {
				return err
			}
			rs := doctor.Run(cmd.Context(), cfg, time.Now)
			if err := g.print(rs, func(w io.Writer) {
				for _, r := range rs {
					fmt.Fprintf(w, "%-4s  %-10s  %s\n", r.Status, r.Check, r.Message)
					if r.Fix != "" && r.Status != doctor.OK {
						fmt.Fprintf(w, "      %-10s  fix: %s\n", "", r.Fix)
					}
				}
			}); err != nil {
				return err
			}
			if n := doctor.Failed(rs); n > 0 {
				return fmt.Errorf("doctor: %d check(s) failed", n)
			}
			return nil
		},
	}
	cmd.Flags().String("listen", "", "check as serve would run with this --listen")
	cmd.Flags().String("issuer", "", "check as serve would run with this --issuer")
	return cmd
}
