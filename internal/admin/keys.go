package admin

import (
	"context"
	"slices"
	"strings"
	"time"

	"smartgate/internal/keys"
	"smartgate/internal/problem"
)

// Key is a signing key as `smartgate key list --output json` shows it,
// plus its age.
type Key struct {
	keys.Info
	AgeSeconds int64 `json:"age_seconds"`
}

// Age is the key's age for people: "3d 4h", "2h 5m", "40s".
func (k Key) Age() string { return humanAge(time.Duration(k.AgeSeconds) * time.Second) }

// Keys lists the signing keys this node holds, oldest first, with their
// state (next, active, retired, expired) and age.
func (s *Service) Keys() []Key {
	now := s.d.Clock()
	list := s.d.Keys.List()
	out := make([]Key, 0, len(list))
	for _, k := range list {
		out = append(out, Key{Info: k, AgeSeconds: int64(now.Sub(k.CreatedAt) / time.Second)})
	}
	return out
}

// RotatedKey is a key a rotation added.
type RotatedKey struct {
	KID      string    `json:"kid"`
	Alg      string    `json:"alg"`
	ActiveAt time.Time `json:"active_at"`
}

// RotateKeys adds a new signing key for each algorithm (both when algs is
// empty): published at once, signing after keys.jwks_max_age.
func (s *Service) RotateKeys(ctx context.Context, a Actor, algs []string) ([]RotatedKey, error) {
	if len(algs) == 0 {
		algs = slices.Clone(keys.Algs) // upper-cased in place below
	}
	for i, alg := range algs {
		switch strings.ToUpper(alg) {
		case keys.ES256, keys.RS256:
			algs[i] = strings.ToUpper(alg)
		default:
			return nil, problem.New(problem.InvalidRequest, "alg %q: use ES256 (access tokens) or RS256 (id_tokens), or leave it out for both", alg)
		}
	}
	created, err := s.d.Keys.Rotate(ctx, algs)
	if err != nil {
		return nil, err
	}
	out := make([]RotatedKey, 0, len(created))
	var kids []string
	for _, k := range created {
		out = append(out, RotatedKey{KID: k.KID, Alg: k.Alg, ActiveAt: k.ActiveAt})
		kids = append(kids, k.KID)
	}
	s.record(ctx, a, "key.rotate", "", map[string]any{"kids": kids, "algs": algs})
	return out, nil
}

// humanAge writes a duration the way people read ages.
func humanAge(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	days := int(d / (24 * time.Hour))
	h := int(d/time.Hour) % 24
	m := int(d/time.Minute) % 60
	switch {
	case days > 0:
		return itoa(days) + "d " + itoa(h) + "h"
	case h > 0:
		return itoa(h) + "h " + itoa(m) + "m"
	case m > 0:
		return itoa(m) + "m"
	}
	return itoa(int(d/time.Second)) + "s"
}
