package config

import (
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// RuntimeKeys are the keys an administrator may change while smartgate
// runs (console, admin API, `smartgate setting`): each is read per request,
// so a change takes effect at the next request, and none of them can leave
// a node inconsistent with another for longer than the change sequence
// takes to reach it (a second). Their values are stored in the database,
// which ranks above the file and below the environment and the flags:
// defaults < file < database < environment < flags.
var RuntimeKeys = []string{
	"registration.policy",
	"authorize.password_grant_roles",
	"tokens.access_token_ttl",
	"tokens.backend_token_ttl",
	"tokens.refresh_idle_ttl",
	"tokens.refresh_max_ttl",
}

// IsRuntimeKey reports whether key is one of RuntimeKeys.
func IsRuntimeKey(key string) bool { return slices.Contains(RuntimeKeys, key) }

// Pinned reports whether key was set by the environment or a flag: those
// layers outrank runtime settings, so the console shows the key read-only.
func (l *Loaded) Pinned(key string) bool {
	s := l.Sources[key]
	return s == FromEnv || s == FromFlag
}

// Value returns key's value in c in the text form the environment takes
// (durations like 1h0m0s, lists comma-separated); "" for an unknown key.
func (c *Config) Value(key string) string {
	v, ok := fieldOf(reflect.ValueOf(c).Elem(), key)
	if !ok {
		return ""
	}
	switch x := v.Interface().(type) {
	case Duration:
		return x.D().String()
	case []string:
		return strings.Join(x, ",")
	case string:
		return x
	case bool:
		return strconv.FormatBool(x)
	case int:
		return strconv.Itoa(x)
	}
	return fmt.Sprint(v.Interface())
}

func fieldOf(v reflect.Value, key string) (reflect.Value, bool) {
	for _, part := range strings.Split(key, ".") {
		if v.Kind() != reflect.Struct {
			return v, false
		}
		found := false
		for i := 0; i < v.NumField(); i++ {
			if strings.Split(v.Type().Field(i).Tag.Get("yaml"), ",")[0] == part {
				v, found = v.Field(i), true
				break
			}
		}
		if !found {
			return v, false
		}
	}
	return v, true
}

// CheckRuntime parses value for the runtime key and checks it by the rules
// of docs/configuration.md, the other keys as l holds them. It returns a
// Problem naming the key and the fix, or nil.
func (l *Loaded) CheckRuntime(key, value string) *Problem {
	_, p := l.applyRuntime(&l.Config, key, value)
	return p
}

// applyRuntime sets key to value on a copy of base and validates the copy:
// the problems of that key only (others were there before).
func (l *Loaded) applyRuntime(base *Config, key, value string) (*Config, *Problem) {
	if !IsRuntimeKey(key) {
		return nil, &Problem{Key: key, Message: fmt.Sprintf("is not a runtime setting; the settings that can change while smartgate runs are %s (others go in the configuration file, and need a restart)", strings.Join(RuntimeKeys, ", "))}
	}
	if l.Pinned(key) {
		return nil, &Problem{Key: key, Message: fmt.Sprintf("is pinned by %s, which outranks runtime settings; change or remove it there", l.pinnedBy(key))}
	}
	tmp := &Loaded{Config: *base}
	if err := tmp.set(key, value); err != nil {
		return nil, &Problem{Key: key, Message: err.Error()}
	}
	c := &tmp.Config
	if err := c.ValidateData(); err != nil {
		for _, p := range err.(*ValidationError).Problems {
			if p.Key == key {
				return nil, &p
			}
		}
	}
	// A retired signing key stays published for the longest token
	// lifetime this node started with (keys.Options.MaxTokenLifetime):
	// a longer lifetime set at runtime would let tokens outlive the key
	// that verifies them.
	if key == "tokens.access_token_ttl" || key == "tokens.backend_token_ttl" {
		ceiling := l.Config.MaxTokenLifetime()
		if d := time.Duration(*fieldPtr[Duration](c, key)); d > ceiling {
			return nil, &Problem{Key: key, Message: fmt.Sprintf("must be at most %s at runtime, the longest token lifetime smartgate started with (a retired signing key stays published only that long); for longer tokens raise it in the configuration file and restart", ceiling)}
		}
	}
	return c, nil
}

func fieldPtr[T any](c *Config, key string) *T {
	v, _ := fieldOf(reflect.ValueOf(c).Elem(), key)
	return v.Addr().Interface().(*T)
}

func (l *Loaded) pinnedBy(key string) string {
	env := EnvPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
	if l.Sources[key] == FromFlag {
		return "a command-line flag"
	}
	return "the environment (" + env + ")"
}

// WithRuntime returns the configuration with stored runtime settings
// applied over l: defaults < file < database < environment < flags.
// Settings for pinned or unknown keys and invalid values are skipped (the
// lower layer stays) and returned as problems, for the log.
func (l *Loaded) WithRuntime(stored map[string]string) (*Config, []Problem) {
	c := l.Config
	cur := &c
	var ps []Problem
	keys := make([]string, 0, len(stored))
	for k := range stored {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		next, p := l.applyRuntime(cur, k, stored[k])
		if p != nil {
			ps = append(ps, *p)
			continue
		}
		cur = next
	}
	return cur, ps
}

// Live is the configuration as runtime settings make it now: an atomic
// snapshot that request handlers load once per request (no lock, no data
// race) and the settings follower replaces whole.
type Live struct{ p atomic.Pointer[Config] }

// NewLive returns a Live holding c.
func NewLive(c *Config) *Live {
	l := &Live{}
	l.p.Store(c)
	return l
}

// Load returns the current snapshot; callers must not modify it.
func (l *Live) Load() *Config { return l.p.Load() }

// Store replaces the snapshot.
func (l *Live) Store(c *Config) { l.p.Store(c) }
