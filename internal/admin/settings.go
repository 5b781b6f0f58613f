package admin

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"smartgate/internal/config"
	"smartgate/internal/problem"
	"smartgate/internal/store"
)

// Settings follows the runtime settings stored in the database and keeps
// the node's live configuration (config.Live) in step: at start, on every
// change of topic "settings" (any node's), and at once after a change made
// here. The order is defaults < file < database < environment < flags.
type Settings struct {
	st   store.Settings
	base *config.Loaded
	live *config.Live
	log  *slog.Logger

	mu sync.Mutex // one Load at a time, so snapshots replace in order
}

// NewSettings returns the follower of runtime settings over base (the
// configuration as loaded), publishing into live.
func NewSettings(st store.Settings, base *config.Loaded, live *config.Live, log *slog.Logger) *Settings {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Settings{st: st, base: base, live: live, log: log}
}

// Live is the node's live configuration.
func (s *Settings) Live() *config.Live { return s.live }

// Load reads the stored settings and publishes the configuration they
// make. Stored values that cannot apply (a pinned key, a value invalid
// here) are skipped with a warning.
func (s *Settings) Load(ctx context.Context) error {
	stored, err := s.st.ListSettings(ctx)
	if err != nil {
		return err
	}
	values := make(map[string]string, len(stored))
	for _, x := range stored {
		values[x.Key] = x.Value
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c, problems := s.base.WithRuntime(values)
	for _, p := range problems {
		s.log.Warn("a stored runtime setting does not apply on this node; the configured value stays", "key", p.Key, "problem", p.Message)
	}
	prev := s.live.Load()
	s.live.Store(c)
	changed := false
	for _, k := range config.RuntimeKeys {
		if prev.Value(k) != c.Value(k) {
			changed = true
			s.log.Info("runtime setting applied", "key", k, "value", c.Value(k))
		}
	}
	if changed && len(c.Authorize.PasswordGrantRoles) > 0 && !slices.Equal(prev.Authorize.PasswordGrantRoles, c.Authorize.PasswordGrantRoles) {
		// The same warning as at start (USERS.md item 8, issue 5 item 12).
		s.log.Warn("the password grant is on (authorize.password_grant_roles): apps see users' passwords, and no consent or two-factor step happens; use it for development only",
			"roles", strings.Join(c.Authorize.PasswordGrantRoles, ","), "source", "runtime setting")
	}
	return nil
}

// Setting is one runtime setting as the console and the API show it.
type Setting struct {
	Key         string `json:"key"`
	Description string `json:"description"`
	// Value is what applies on this node now.
	Value string `json:"value"`
	// Source is the layer Value comes from: default, file, database, env
	// or flag.
	Source string `json:"source"`
	// Pinned: set by the environment or a flag, which runtime settings
	// cannot override; PinnedBy names which.
	Pinned   bool   `json:"pinned"`
	PinnedBy string `json:"pinned_by,omitempty"`
	// Configured is the value without the database layer: the file's, or
	// the default.
	Configured string `json:"configured"`
	// Stored is the value stored in the database, if any.
	Stored *StoredSetting `json:"stored,omitempty"`
}

// StoredSetting is a value an administrator stored.
type StoredSetting struct {
	Value     string    `json:"value"`
	UpdatedAt time.Time `json:"updated_at"`
	UpdatedBy string    `json:"updated_by"`
}

// settingDescriptions say what each runtime key does, for the console.
var settingDescriptions = map[string]string{
	"registration.policy":            "Dynamic client registration: open (anyone may register an app) or token (an initial access token is required).",
	"authorize.password_grant_roles": "Roles (practitioner, patient; comma-separated) that may use the password grant. Empty: off. For development only: the app sees the user's password.",
	"tokens.access_token_ttl":        "Lifetime of access tokens from user grants (authorization code, refresh).",
	"tokens.backend_token_ttl":       "Lifetime of access tokens of backend services (client_credentials).",
	"tokens.refresh_idle_ttl":        "An offline_access refresh token unused this long stops working.",
	"tokens.refresh_max_ttl":         "An offline_access grant ends this long after the user authorised it.",
}

// View lists the runtime settings: the value in force, where it comes
// from, and any stored value.
func (s *Settings) View(ctx context.Context) ([]Setting, error) {
	stored, err := s.st.ListSettings(ctx)
	if err != nil {
		return nil, err
	}
	byKey := map[string]store.Setting{}
	for _, x := range stored {
		byKey[x.Key] = x
	}
	live := s.live.Load()
	out := make([]Setting, 0, len(config.RuntimeKeys))
	for _, k := range config.RuntimeKeys {
		v := Setting{Key: k, Description: settingDescriptions[k], Value: live.Value(k), Configured: s.base.Value(k), Source: string(s.base.Sources[k])}
		if x, ok := byKey[k]; ok {
			v.Stored = &StoredSetting{Value: x.Value, UpdatedAt: x.UpdatedAt, UpdatedBy: x.UpdatedBy}
		}
		if s.base.Pinned(k) {
			v.Pinned = true
			v.PinnedBy = "--" + strings.ReplaceAll(strings.ReplaceAll(k, "_", "-"), ".", "-")
			if s.base.Sources[k] == config.FromEnv {
				v.PinnedBy = config.EnvPrefix + strings.ToUpper(strings.ReplaceAll(k, ".", "_"))
			}
		} else if v.Stored != nil && v.Value == s.normalized(k, v.Stored.Value) {
			v.Source = "database"
		}
		out = append(out, v)
	}
	return out, nil
}

// normalized is a stored value in the form Value writes (durations as
// 1h0m0s), "" when it does not apply.
func (s *Settings) normalized(key, value string) string {
	c, ps := s.base.WithRuntime(map[string]string{key: value})
	if len(ps) > 0 {
		return ""
	}
	return c.Value(key)
}

func (s *Settings) check(key string) error {
	if !config.IsRuntimeKey(key) {
		return problem.New(problem.NotFound, "%q is not a runtime setting; the settings that can change while smartgate runs are %s", key, strings.Join(config.RuntimeKeys, ", "))
	}
	if s.base.Pinned(key) {
		p := s.base.CheckRuntime(key, "")
		return problem.New(problem.SettingPinned, "%s %s", key, p.Message)
	}
	return nil
}

// SetSetting stores a runtime setting after checking it by the rules of
// docs/configuration.md. This node applies it at once, every other node
// within a second.
func (s *Service) SetSetting(ctx context.Context, a Actor, key, value string) (Setting, error) {
	st := s.d.Settings
	value = strings.TrimSpace(value)
	if err := st.check(key); err != nil {
		return Setting{}, err
	}
	if p := st.base.CheckRuntime(key, value); p != nil {
		return Setting{}, problem.New(problem.InvalidRequest, "%s", p.String())
	}
	before := st.live.Load().Value(key)
	if err := s.d.Store.PutSetting(ctx, store.Setting{Key: key, Value: value, UpdatedAt: s.now(), UpdatedBy: a.ID}); err != nil {
		return Setting{}, err
	}
	if err := st.Load(ctx); err != nil {
		return Setting{}, err
	}
	s.record(ctx, a, "setting.set", "", map[string]any{"key": key, "value": value, "before": before})
	return s.setting(ctx, key)
}

// ResetSetting forgets a stored runtime setting: the key goes back to the
// file's value or the default.
func (s *Service) ResetSetting(ctx context.Context, a Actor, key string) (Setting, error) {
	st := s.d.Settings
	if err := st.check(key); err != nil {
		return Setting{}, err
	}
	before := st.live.Load().Value(key)
	err := s.d.Store.DeleteSetting(ctx, key)
	if errors.Is(err, store.ErrNotFound) {
		return Setting{}, problem.New(problem.NotFound, "%s has no stored value; it already follows the configuration (%s)", key, st.base.Value(key))
	}
	if err != nil {
		return Setting{}, err
	}
	if err := st.Load(ctx); err != nil {
		return Setting{}, err
	}
	s.record(ctx, a, "setting.reset", "", map[string]any{"key": key, "before": before})
	return s.setting(ctx, key)
}

// ListSettings returns every runtime setting.
func (s *Service) ListSettings(ctx context.Context) ([]Setting, error) { return s.d.Settings.View(ctx) }

func (s *Service) setting(ctx context.Context, key string) (Setting, error) {
	all, err := s.d.Settings.View(ctx)
	if err != nil {
		return Setting{}, err
	}
	for _, v := range all {
		if v.Key == key {
			return v, nil
		}
	}
	return Setting{}, problem.New(problem.NotFound, "no runtime setting %q", key)
}
