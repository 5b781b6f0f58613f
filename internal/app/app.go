// Package app opens what every command shares: the configuration's data
// dir, the store (migrated), the KEK and the signing keys. serve, the key
// commands, migrate and doctor all act on the same data through it.
package app

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"time"

	"smartgate/internal/config"
	"smartgate/internal/keys"
	"smartgate/internal/problem"
	"smartgate/internal/store/sqlstore"
)

// App is an opened smartgate installation.
type App struct {
	Cfg   *config.Loaded
	Store *sqlstore.DB
	Keys  *keys.Manager
	Log   *slog.Logger
}

// Options say how much to open.
type Options struct {
	InitKeys bool // load the KEK and make sure signing keys exist
	// BuildIndexes builds the search indexes an interrupted bulk load
	// left unbuilt (serve: a server does not search without them).
	BuildIndexes bool
}

// Prepare does the dev-mode first-start setup: the data dir (mode 0700) and
// a generated KEK file (mode 0600) when there is none.
func Prepare(cfg *config.Config) error {
	if !cfg.Dev && cfg.IsPostgres() {
		return nil
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data dir %s: %w (check data_dir)", cfg.DataDir, err)
	}
	if cfg.Dev && cfg.KEK == "" {
		err := keys.WriteKEKFile(cfg.KEKFile, keys.GenerateKEK(), true)
		if err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("creating the dev KEK file %s: %w", cfg.KEKFile, err)
		}
	}
	return nil
}

// LoadKEK returns the configured KEK: SMARTGATE_KEK (key "kek") or kek_file.
func LoadKEK(cfg *config.Config) (*keys.KEK, error) {
	if cfg.KEK != "" {
		return keys.ParseKEK(cfg.KEK, "SMARTGATE_KEK")
	}
	if cfg.KEKFile == "" {
		return nil, problem.New(problem.KEKMissing, "no key-encryption key: set kek_file or SMARTGATE_KEK")
	}
	return keys.LoadKEKFile(cfg.KEKFile)
}

// OpenStore prepares the data dir and opens the configured database
// without migrating it.
func OpenStore(ctx context.Context, cfg *config.Config, maxConns int) (*sqlstore.DB, error) {
	if err := Prepare(cfg); err != nil {
		return nil, err
	}
	st, err := sqlstore.Open(ctx, cfg.Database, sqlstore.Options{MaxConns: maxConns})
	if err != nil {
		return nil, problem.Wrap(problem.DatabaseUnreachable, err, "cannot open the database %s; check the database setting", cfg.RedactedDatabase())
	}
	return st, nil
}

// Open opens the installation described by cfg and applies pending
// migrations (every command that acts on the data runs at the schema it
// was built for).
func Open(ctx context.Context, cfg *config.Loaded, log *slog.Logger, opts Options) (*App, error) {
	st, err := OpenStore(ctx, &cfg.Config, cfg.DatabaseMaxConns)
	if err != nil {
		return nil, err
	}
	a := &App{Cfg: cfg, Store: st, Log: log}
	applied, err := st.Migrate(ctx)
	if err != nil {
		st.Close()
		return nil, err
	}
	if len(applied) > 0 {
		log.Info("database migrated", "versions", applied, "dialect", st.Dialect())
	}
	if opts.BuildIndexes {
		if err := BuildDeferredIndexes(ctx, st, log); err != nil {
			st.Close()
			return nil, err
		}
	}
	a.Keys = keys.New(st, keys.Options{
		JWKSMaxAge:       cfg.Keys.JWKSMaxAge.D(),
		MaxTokenLifetime: cfg.MaxTokenLifetime(),
		LoadKEK:          func() (*keys.KEK, error) { return LoadKEK(&cfg.Config) },
		Log:              log,
	})
	if opts.InitKeys {
		if err := a.Keys.Init(ctx); err != nil {
			st.Close()
			return nil, err
		}
	}
	return a, nil
}

// Close releases the store.
func (a *App) Close() error { return a.Store.Close() }

// BuildDeferredIndexes builds the search indexes that a bulk load into an
// empty store deferred and did not build (it was interrupted, or it is
// still running: it then goes on with the indexes, slower), saying so in
// the log since it may take minutes on a large store.
func BuildDeferredIndexes(ctx context.Context, st *sqlstore.DB, log *slog.Logger) error {
	names, err := st.DeferredIndexes(ctx)
	if err != nil || len(names) == 0 {
		return err
	}
	log.Warn("building the search indexes a bulk load (seed or import) left unbuilt; this can take minutes on a large store", "indexes", names)
	start := time.Now()
	if _, err := st.BuildDeferredIndexes(ctx); err != nil {
		return fmt.Errorf("building the search indexes a bulk load left unbuilt: %w", err)
	}
	log.Info("search indexes built", "indexes", names, "seconds", time.Since(start).Seconds())
	return nil
}
