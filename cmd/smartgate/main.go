// Command smartgate is the SMART on FHIR authorization server and FHIR API
// in one binary. See README.md and docs/.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"smartgate/internal/server"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"smartgate/internal/config"
	"smartgate/internal/problem"
)

func main() {
	server.Version = version
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// After the first signal starts a graceful shutdown, restore the default
	// handling so that a second one ends the process at once.
	go func() { <-ctx.Done(); stop() }()
	err := newRoot(os.Stdout, os.Stderr, os.Environ()).ExecuteContext(ctx)
	stop()
	if err != nil {
		printError(os.Stderr, err)
		os.Exit(1)
	}
}

// printError explains a failure on the terminal: every configuration
// problem on its own line, or the error's description and where the docs
// explain it.
func printError(w io.Writer, err error) {
	var ve *config.ValidationError
	var pe *problem.Error
	switch {
	case errors.As(err, &ve):
		fmt.Fprintf(w, "smartgate: %v\n", ve)
		for _, p := range ve.Problems {
			if p.Insecure {
				fmt.Fprintf(w, "See docs/errors.md#%s.\n", problem.InsecureIssuer)
				return
			}
		}
		fmt.Fprintf(w, "See docs/configuration.md for every key.\n")
	case errors.As(err, &pe):
		fmt.Fprintf(w, "smartgate: %s\n", pe.Description)
		if pe.Hint != "" {
			fmt.Fprintln(w, pe.Hint)
		}
		fmt.Fprintf(w, "See docs/errors.md#%s.\n", pe.ID)
	default:
		fmt.Fprintf(w, "smartgate: %v\n", err)
	}
}

// globals are the flags every command shares.
type globals struct {
	stdout, stderr io.Writer
	env            []string
	configFile     string
	output         string
	flags          *pflag.FlagSet
}

func newRoot(stdout, stderr io.Writer, env []string) *cobra.Command {
	g := &globals{stdout: stdout, stderr: stderr, env: env}
	root := &cobra.Command{
		Use:   "smartgate",
		Short: "SMART on FHIR authorization server and FHIR R4 API",
		Long: `smartgate is an OAuth 2.0 / OpenID Connect authorization server with SMART App
Launch 2.2 and Backend Services, and the FHIR R4 API it protects, in one binary.

Try it:        smartgate serve --dev
Configuration: defaults < YAML file (--config) < SMARTGATE_* environment < flags.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentPreRunE = func(*cobra.Command, []string) error {
		if g.output != "text" && g.output != "json" {
			return fmt.Errorf("--output must be text or json, not %q", g.output)
		}
		return nil
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	pf := root.PersistentFlags()
	pf.StringVar(&g.configFile, "config", "", "YAML configuration file")
	pf.String("database", "", "database: a SQLite file path or a postgres:// URL (default <data-dir>/smartgate.db)")
	pf.String("data-dir", "", "directory for the SQLite database and the dev KEK (default ./smartgate-data)")
	pf.Bool("dev", false, "dev mode: loopback HTTP, generated KEK, open registration, demo data")
	pf.StringVarP(&g.output, "output", "o", "text", "output format of commands that print data: text or json")
	g.flags = pf
	root.AddCommand(serveCmd(g), migrateCmd(g), doctorCmd(g), keyCmd(g), clientCmd(g), userCmd(g), settingCmd(g), launchCmd(g), tokenCmd(g), importCmd(g), seedCmd(g), versionCmd(g))
	return root
}

// flagKeys maps flag names to configuration keys.
var flagKeys = map[string]string{
	"database": "database", "data-dir": "data_dir", "dev": "dev",
	"listen": "listen", "issuer": "issuer",
}

// load builds the configuration from every layer, with the flags the user set.
func (g *globals) load(cmd *cobra.Command) (*config.Loaded, error) {
	set := map[string]string{}
	visit := func(f *pflag.Flag) {
		if k, ok := flagKeys[f.Name]; ok && f.Changed {
			set[k] = f.Value.String()
		}
	}
	cmd.Flags().VisitAll(visit)
	cmd.InheritedFlags().VisitAll(visit)
	file := g.configFile
	if file == "" {
		for _, kv := range g.env {
			if v, ok := strings.CutPrefix(kv, "SMARTGATE_CONFIG="); ok {
				file = v
			}
		}
	}
	return config.Load(config.Options{File: file, Env: g.env, Flags: set})
}

// logger builds the structured log stream (standard error) for cfg.
func (g *globals) logger(cfg *config.Config, level slog.Level) *slog.Logger {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(cfg.Log.Level)); err != nil {
		lv = slog.LevelInfo
	}
	if level > lv {
		lv = level
	}
	opts := &slog.HandlerOptions{Level: lv, ReplaceAttr: redact}
	if cfg.Log.Format == "text" {
		return slog.New(slog.NewTextHandler(g.stderr, opts))
	}
	return slog.New(slog.NewJSONHandler(g.stderr, opts))
}

// redact is the last line of defence: attributes whose names say they hold
// a secret never reach the log, whatever a caller passed.
func redact(_ []string, a slog.Attr) slog.Attr {
	switch strings.ToLower(a.Key) {
	case "password", "secret", "client_secret", "token", "access_token", "refresh_token", "id_token",
		"authorization", "kek", "code", "assertion", "client_assertion", "registration_access_token":
		return slog.String(a.Key, "[redacted]")
	}
	return a
}

// print writes v as JSON with --output json, or calls text otherwise.
func (g *globals) print(v any, text func(w io.Writer)) error {
	if g.output == "json" {
		enc := json.NewEncoder(g.stdout)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		return enc.Encode(v)
	}
	text(g.stdout)
	return nil
}
