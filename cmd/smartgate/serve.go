package main

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"

	"github.com/spf13/cobra"

	"smartgate/internal/app"
	"smartgate/internal/oauth"
	"smartgate/internal/server"
)

// serveMemoryLimit is serve's soft limit on the Go runtime's memory
// (runtime/debug.SetMemoryLimit) unless GOMEMLIMIT is set: with SQLite's
// page caches it keeps the process under 300 MB.
const serveMemoryLimit = 200 << 20

func serveCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the authorization server and FHIR API",
		Long: `Run smartgate.

  smartgate serve --dev
      HTTP on 127.0.0.1:8080 (or the loopback --listen given); the issuer is
      http:// + that address; data, a generated KEK file (mode 0600), demo
      data and demo users (dev-users.json, mode 0600) in --data-dir (default
      ./smartgate-data). The demo passwords are printed on the first start.

  smartgate serve --sandbox
      Dev mode plus the sandbox at /sandbox: a launch simulator (EHR and
      standalone launches of any app, with a chosen patient, encounter and
      user) and error injection (choose the error a client gets on its next
      request). For app developers on their own machine (docs/portal.md).

  smartgate serve --config /etc/smartgate/smartgate.yaml
      Production: needs an https issuer, TLS (tls.cert_file/tls.key_file, or a
      TLS-terminating proxy in trusted_proxies) and a KEK; optionally a
      postgres:// database shared by several nodes.

SIGTERM or SIGINT shuts down gracefully; SIGHUP reloads the TLS certificate.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load(cmd)
			if err != nil {
				return err
			}
			if err := cfg.Validate(); err != nil {
				return err
			}
			log := g.logger(&cfg.Config, slog.LevelDebug-1)
			if os.Getenv("GOGC") == "" {
				// The live heap is small (tens of MB) and the token path
				// allocates per request: a less eager collector cut CPU per
				// token request by about 30% and p99 by a third in
				// bench/peers.sh. GOGC in the environment overrides it.
				debug.SetGCPercent(400)
			}
			if os.Getenv("GOMEMLIMIT") == "" {
				// With GOGC at 400 the heap may grow to five times what
				// survived the last collection: a Bulk Data download (1 MiB
				// chunks at hundreds of MB/s) took the server past 500 MB at
				// 1M resources. A soft limit makes the collector work harder
				// near it instead; GOMEMLIMIT in the environment overrides it.
				debug.SetMemoryLimit(serveMemoryLimit)
			}
			a, err := app.Open(cmd.Context(), cfg, log, app.Options{InitKeys: true, BuildIndexes: true})
			if err != nil {
				return err
			}
			defer a.Close()
			reg := oauth.NewRegistry(a.Store, nil, &cfg.Config, nil)
			if err := oauth.EnsureCLIClient(cmd.Context(), reg); err != nil {
				return fmt.Errorf("creating the built-in client %s: %w", oauth.CLIClientID, err)
			}
			if cfg.Dev {
				if err := ensureDevUsers(cmd.Context(), g, a); err != nil {
					return err
				}
				path := filepath.Join(cfg.DataDir, oauth.DevClientsFile)
				if _, err := oauth.EnsureDevClients(cmd.Context(), reg, path); err != nil {
					return err
				}
				fmt.Fprintf(g.stdout, "demo clients (ids, secrets, the backend's private key): %s\n", path)
			}
			return server.Run(cmd.Context(), a, g.stdout)
		},
	}
	f := cmd.Flags()
	f.String("listen", "", "address to listen on (dev default 127.0.0.1:8080; :8443 with TLS, else :8080)")
	f.String("issuer", "", "public https:// base URL of this server (required outside dev mode)")
	f.Bool("sandbox", false, "sandbox mode: dev mode plus the launch simulator and error injection at /sandbox")
	return cmd
}

func init() {
	flagKeys["sandbox"] = "sandbox" // serve --sandbox (config key sandbox)
}
