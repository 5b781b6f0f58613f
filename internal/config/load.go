package config

import (
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// EnvPrefix starts every environment variable smartgate reads.
const EnvPrefix = "SMARTGATE_"

// Source says which layer set a key last.
type Source string

const (
	FromDefault Source = "default"
	FromFile    Source = "file"
	FromEnv     Source = "env"
	FromFlag    Source = "flag"
)

// Loaded is a Config with the layer each key came from (keys set by the
// environment or a flag are pinned: runtime settings cannot override them).
type Loaded struct {
	Config
	Sources map[string]Source
}

// Options are the inputs of Load.
type Options struct {
	File  string            // YAML file; "" for none
	Env   []string          // os.Environ() form; only SMARTGATE_* entries are read
	Flags map[string]string // dotted key -> value, only for flags the user set
}

// Load applies the layers in order and resolves derived settings. It does not
// validate: call Validate for the list of problems.
func Load(opts Options) (*Loaded, error) {
	l := &Loaded{Config: Default(), Sources: map[string]Source{}}
	for _, k := range AllKeys() {
		l.Sources[k.Name] = FromDefault
	}
	var errs []string
	if opts.File != "" {
		raw, err := os.ReadFile(opts.File)
		if err != nil {
			return nil, fmt.Errorf("config file: %w (check --config)", err)
		}
		// The file goes through the same per-key setter as the environment
		// and the flags, so every bad key is named and all are reported.
		var tree map[string]any
		if err := yaml.Unmarshal(raw, &tree); err != nil {
			return nil, fmt.Errorf("config file %s is not valid YAML: %s", opts.File, strings.TrimPrefix(err.Error(), "yaml: "))
		}
		leaves := flatten("", tree)
		sort.Slice(leaves, func(i, j int) bool { return leaves[i].name < leaves[j].name })
		for _, lf := range leaves {
			if err := l.set(lf.name, lf.value); err != nil {
				errs = append(errs, fmt.Sprintf("config file %s: %s: %v", opts.File, lf.name, err))
				continue
			}
			l.Sources[lf.name] = FromFile
		}
	}
	byEnv := map[string]Key{}
	for _, k := range AllKeys() {
		byEnv[k.Env] = k
	}
	for _, kv := range opts.Env {
		name, val, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, EnvPrefix) {
			continue
		}
		k, known := byEnv[name]
		if !known {
			continue // SMARTGATE_TEST_* and the like belong to other tools
		}
		if err := l.set(k.Name, val); err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", name, err))
			continue
		}
		l.Sources[k.Name] = FromEnv
	}
	names := make([]string, 0, len(opts.Flags))
	for n := range opts.Flags {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := l.set(n, opts.Flags[n]); err != nil {
			errs = append(errs, fmt.Sprintf("--%s: %v", strings.ReplaceAll(n, "_", "-"), err))
			continue
		}
		l.Sources[n] = FromFlag
	}
	if len(errs) > 0 {
		return nil, errors.New(strings.Join(errs, "\n"))
	}
	l.Config.Resolve()
	return l, nil
}

type leaf struct{ name, value string }

// flatten turns a YAML tree into dotted keys and their text values; lists
// become comma-separated, as in the environment.
func flatten(prefix string, m map[string]any) []leaf {
	var out []leaf
	for k, v := range m {
		name := k
		if prefix != "" {
			name = prefix + "." + k
		}
		switch x := v.(type) {
		case nil:
			continue
		case map[string]any:
			out = append(out, flatten(name, x)...)
		case []any:
			if len(x) > 0 {
				if _, objects := x[0].(map[string]any); objects {
					// A list of objects (federation.providers): kept whole,
					// as JSON, which set decodes; the environment takes the
					// same JSON.
					b, err := json.Marshal(x)
					if err == nil {
						out = append(out, leaf{name, string(b)})
						continue
					}
				}
			}
			items := make([]string, len(x))
			for i, it := range x {
				items[i] = fmt.Sprint(it)
			}
			out = append(out, leaf{name, strings.Join(items, ",")})
		default:
			out = append(out, leaf{name, fmt.Sprint(x)})
		}
	}
	return out
}

// Key describes one configuration key.
type Key struct {
	Name   string // dotted, as in the YAML file
	Env    string
	Type   string
	Secret bool
}

// AllKeys lists every configuration key, in declaration order.
func AllKeys() []Key {
	var out []Key
	walk(reflect.TypeOf(Config{}), "", func(name string, f reflect.StructField) {
		out = append(out, Key{
			Name:   name,
			Env:    EnvPrefix + strings.ToUpper(strings.ReplaceAll(name, ".", "_")),
			Type:   typeName(f.Type),
			Secret: f.Tag.Get("secret") == "true",
		})
	})
	return out
}

var durationType = reflect.TypeOf(Duration(0))

func typeName(t reflect.Type) string {
	switch {
	case t == durationType:
		return "duration"
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Struct:
		return "list of objects"
	case t.Kind() == reflect.Slice:
		return "list"
	default:
		return t.Kind().String()
	}
}

func walk(t reflect.Type, prefix string, fn func(string, reflect.StructField)) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name := strings.Split(f.Tag.Get("yaml"), ",")[0]
		if prefix != "" {
			name = prefix + "." + name
		}
		if f.Type.Kind() == reflect.Struct && f.Type != durationType {
			walk(f.Type, name, fn)
			continue
		}
		fn(name, f)
	}
}

// set assigns the string form of a value to the dotted key.
func (l *Loaded) set(name, val string) error {
	v := reflect.ValueOf(&l.Config).Elem()
	for _, part := range strings.Split(name, ".") {
		found := false
		for i := 0; i < v.NumField(); i++ {
			if strings.Split(v.Type().Field(i).Tag.Get("yaml"), ",")[0] == part {
				v = v.Field(i)
				found = true
				break
			}
		}
		if !found {
			return fmt.Errorf("unknown setting %q (docs/configuration.md lists every key)", name)
		}
	}
	if tu, ok := v.Addr().Interface().(encoding.TextUnmarshaler); ok {
		return tu.UnmarshalText([]byte(val))
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(val)
	case reflect.Bool:
		b, err := strconv.ParseBool(val)
		if err != nil {
			return fmt.Errorf("%q is not true or false", val)
		}
		v.SetBool(b)
	case reflect.Int:
		n, err := strconv.Atoi(val)
		if err != nil {
			return fmt.Errorf("%q is not a whole number", val)
		}
		v.SetInt(int64(n))
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Struct {
			// JSON is YAML: decode with the yaml tags, refusing unknown keys.
			dec := yaml.NewDecoder(strings.NewReader(val))
			dec.KnownFields(true)
			list := reflect.New(v.Type())
			if err := dec.Decode(list.Interface()); err != nil {
				return fmt.Errorf("not a list of objects as docs/configuration.md describes: %s", strings.TrimPrefix(err.Error(), "yaml: "))
			}
			v.Set(list.Elem())
			return nil
		}
		var items []string
		for _, s := range strings.Split(val, ",") {
			if s = strings.TrimSpace(s); s != "" {
				items = append(items, s)
			}
		}
		v.Set(reflect.ValueOf(items))
	default:
		return fmt.Errorf("cannot set %s from text", name)
	}
	return nil
}
