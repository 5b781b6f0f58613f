package keys

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"

	"smartgate/internal/problem"
	"smartgate/internal/store"
)

// The algorithms smartgate signs with: ES256 for access tokens (fast, small)
// and RS256 for id_tokens (OpenID Connect Core §15.1 mandatory).
const (
	ES256 = "ES256"
	RS256 = "RS256"
)

// Algs lists every signing algorithm in use.
var Algs = []string{ES256, RS256}

// rsaBits is the RS256 modulus size (at least 2048, RFC 7518 §3.3).
const rsaBits = 2048

// Options configure a Manager.
type Options struct {
	// JWKSMaxAge is how long clients may cache the JWKS; a rotated key is
	// published this long before it signs.
	JWKSMaxAge time.Duration
	// MaxTokenLifetime is the longest lifetime of anything a key signs; a
	// retired key stays published this long after it stops signing.
	MaxTokenLifetime time.Duration
	// LoadKEK returns the current KEK; it is called again when a stored key
	// does not open (after `key rewrap`, the file may hold a new KEK).
	LoadKEK func() (*KEK, error)
	Clock   func() time.Time
	Log     *slog.Logger
}

// Manager holds the decrypted signing keys of one node and the JWKS.
type Manager struct {
	st   store.SigningKeys
	opts Options

	mu      sync.RWMutex
	kek     *KEK
	keys    []*Key                      // every stored key, sorted by alg then ActiveAt
	public  map[string]*jose.JSONWebKey // kid -> public key, for verification
	opened  map[string]*Key             // kid -> key with its private part, cache across reloads
	loadErr error                       // why some key could not be opened, if any

	gen       uint64    // bumped by every Reload
	jwks      []byte    // cached JWKS document
	jwksGen   uint64    // the generation it was built from
	jwksUntil time.Time // the next key-state transition, when it must be rebuilt
}

// Key is one signing key with its decrypted private part.
type Key struct {
	store.SigningKey
	Private crypto.Signer
}

// State of a key at a moment.
type State string

const (
	StateNext    State = "next"    // published, not yet signing
	StateActive  State = "active"  // signing
	StateRetired State = "retired" // no longer signing, still published
	StateExpired State = "expired" // neither
)

// Info describes a key for `key list` and doctor.
type Info struct {
	KID            string    `json:"kid"`
	Alg            string    `json:"alg"`
	State          State     `json:"state"`
	CreatedAt      time.Time `json:"created_at"`
	ActiveAt       time.Time `json:"active_at"`
	RetiredAt      time.Time `json:"retired_at,omitzero"`
	PublishedUntil time.Time `json:"published_until,omitzero"`
	KEKID          string    `json:"kek_id"`
	Usable         bool      `json:"usable"` // this node could decrypt it
}

// New returns a Manager; call Init before use.
func New(st store.SigningKeys, opts Options) *Manager {
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	return &Manager{st: st, opts: opts, opened: map[string]*Key{}}
}

// Load reads the KEK and opens the stored keys without creating any (for
// doctor, which must not change anything).
func (m *Manager) Load(ctx context.Context) error {
	if _, err := m.loadKEK(); err != nil {
		return err
	}
	return m.Reload(ctx)
}

func (m *Manager) loadKEK() (*KEK, error) {
	kek, err := m.opts.LoadKEK()
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	m.kek = kek
	m.mu.Unlock()
	return kek, nil
}

// Init makes sure a key of every algorithm exists (creating the missing ones
// under the store's lock, so nodes starting together create one set), then
// loads them all.
func (m *Manager) Init(ctx context.Context) error {
	kek, err := m.loadKEK()
	if err != nil {
		return err
	}
	err = m.st.UpdateSigningKeys(ctx, func(existing []store.SigningKey) ([]store.SigningKey, error) {
		var created []store.SigningKey
		for _, alg := range Algs {
			if hasAlg(existing, alg) {
				continue
			}
			// Nothing can have cached a JWKS without this algorithm's key
			// being needed yet, so the first key signs at once.
			now := m.opts.Clock()
			k, err := generate(kek, alg, now, now)
			if err != nil {
				return nil, err
			}
			created = append(created, k)
			m.opts.Log.Info("signing key created", "kid", k.KID, "alg", alg)
		}
		return created, nil
	})
	if err != nil {
		return err
	}
	return m.Reload(ctx)
}

func hasAlg(ks []store.SigningKey, alg string) bool {
	for _, k := range ks {
		if k.Alg == alg {
			return true
		}
	}
	return false
}

// Reload re-reads the stored keys (after a change on topic "keys"). Keys it
// already opened stay open; a key that does not open under the current KEK
// triggers one re-read of the KEK.
func (m *Manager) Reload(ctx context.Context) error {
	stored, err := m.st.ListSigningKeys(ctx)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var keys []*Key
	var failed []string
	reloaded := false
	for _, sk := range stored {
		k, ok := m.opened[sk.KID]
		if !ok {
			priv, err := m.open(sk)
			if errors.Is(err, ErrWrongKEK) && !reloaded {
				reloaded = true
				if kek, kerr := m.opts.LoadKEK(); kerr == nil && kek.ID != m.kek.ID {
					m.kek = kek
					priv, err = m.open(sk)
				}
			}
			if err != nil {
				failed = append(failed, sk.KID)
				keys = append(keys, &Key{SigningKey: sk})
				continue
			}
			k = &Key{SigningKey: sk, Private: priv}
			m.opened[sk.KID] = k
		}
		k.SigningKey = sk // rewrap changes the sealed form, not the key
		keys = append(keys, k)
	}
	sort.SliceStable(keys, func(i, j int) bool {
		if keys[i].Alg != keys[j].Alg {
			return keys[i].Alg < keys[j].Alg
		}
		return keys[i].ActiveAt.Before(keys[j].ActiveAt)
	})
	m.keys = keys
	m.public = make(map[string]*jose.JSONWebKey, len(keys))
	for _, k := range keys {
		var jwk jose.JSONWebKey
		if err := jwk.UnmarshalJSON(k.PublicJWK); err == nil && jwk.IsPublic() {
			m.public[k.KID] = &jwk
		}
	}
	m.gen++
	m.loadErr = nil
	if len(failed) > 0 {
		m.loadErr = problem.New(problem.KEKMismatch, "the KEK from %s does not decrypt signing key(s) %v; give this node the KEK they were sealed with", m.kek.Source, failed)
		m.opts.Log.Error("signing keys not usable", "kids", failed, "kek_source", m.kek.Source)
	}
	return nil
}

// LoadError reports keys this node could not open (nil when all are usable).
func (m *Manager) LoadError() error {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.loadErr
}

func (m *Manager) open(sk store.SigningKey) (crypto.Signer, error) {
	der, err := m.kek.Open(sk.KID, sk.PrivateEnc)
	if err != nil {
		return nil, err
	}
	key, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", sk.KID, err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("signing key %s is not a signer", sk.KID)
	}
	return signer, nil
}

// generate creates a key of alg, sealed under kek. Its kid is the RFC 7638
// thumbprint of the public key, so kids are unique.
func generate(kek *KEK, alg string, created, activeAt time.Time) (store.SigningKey, error) {
	var priv crypto.Signer
	var err error
	switch alg {
	case ES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case RS256:
		priv, err = rsa.GenerateKey(rand.Reader, rsaBits)
	default:
		return store.SigningKey{}, fmt.Errorf("keys: unsupported algorithm %q", alg)
	}
	if err != nil {
		return store.SigningKey{}, err
	}
	pub := jose.JSONWebKey{Key: priv.Public(), Algorithm: alg, Use: "sig"}
	tp, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		return store.SigningKey{}, err
	}
	pub.KeyID = base64.RawURLEncoding.EncodeToString(tp)
	pubJSON, err := pub.MarshalJSON()
	if err != nil {
		return store.SigningKey{}, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return store.SigningKey{}, err
	}
	sealed, err := kek.Seal(pub.KeyID, der)
	if err != nil {
		return store.SigningKey{}, err
	}
	return store.SigningKey{
		KID: pub.KeyID, Alg: alg, PublicJWK: pubJSON, PrivateEnc: sealed, KEKID: kek.ID,
		CreatedAt: created.UTC().Truncate(time.Microsecond), ActiveAt: activeAt.UTC().Truncate(time.Microsecond),
	}, nil
}

// Rotate adds a new key for each of algs. It is published at once and signs
// only after JWKSMaxAge, when every client's cached JWKS has it.
func (m *Manager) Rotate(ctx context.Context, algs []string) ([]store.SigningKey, error) {
	m.mu.RLock()
	kek := m.kek
	m.mu.RUnlock()
	var out []store.SigningKey
	err := m.st.UpdateSigningKeys(ctx, func([]store.SigningKey) ([]store.SigningKey, error) {
		now := m.opts.Clock()
		out = out[:0]
		for _, alg := range algs {
			k, err := generate(kek, alg, now, now.Add(m.opts.JWKSMaxAge))
			if err != nil {
				return nil, err
			}
			out = append(out, k)
		}
		return out, nil
	})
	if err != nil {
		return nil, err
	}
	return out, m.Reload(ctx)
}

// Rewrap re-encrypts every stored key under next. Every key must open under
// the current KEK first; otherwise nothing changes.
func (m *Manager) Rewrap(ctx context.Context, next *KEK) (int, error) {
	m.mu.RLock()
	cur := m.kek
	m.mu.RUnlock()
	n := 0
	err := m.st.UpdateSigningKeys(ctx, func(existing []store.SigningKey) ([]store.SigningKey, error) {
		out := make([]store.SigningKey, 0, len(existing))
		for _, sk := range existing {
			der, err := cur.Open(sk.KID, sk.PrivateEnc)
			if err != nil && next.ID == sk.KEKID {
				der, err = next.Open(sk.KID, sk.PrivateEnc) // already rewrapped by an interrupted run
			}
			if err != nil {
				return nil, problem.Wrap(problem.KEKMismatch, err, "signing key %s does not open under the KEK from %s; rewrap needs the KEK the keys are sealed with", sk.KID, cur.Source)
			}
			sealed, err := next.Seal(sk.KID, der)
			if err != nil {
				return nil, err
			}
			sk.PrivateEnc, sk.KEKID = sealed, next.ID
			out = append(out, sk)
		}
		n = len(out)
		return out, nil
	})
	if err != nil {
		return 0, err
	}
	m.mu.Lock()
	m.kek = next
	m.mu.Unlock()
	return n, m.Reload(ctx)
}

// Signer returns the key that signs for alg now: the newest one whose
// ActiveAt has passed.
func (m *Manager) Signer(alg string) (*Key, error) {
	now := m.opts.Clock()
	m.mu.RLock()
	defer m.mu.RUnlock()
	var best *Key
	for _, k := range m.keys {
		if k.Alg == alg && !k.ActiveAt.After(now) {
			best = k
		}
	}
	if best == nil || best.Private == nil {
		cause := m.loadErr
		if cause == nil {
			cause = fmt.Errorf("no %s key is active", alg)
		}
		return nil, problem.Wrap(problem.SigningKeyUnavailable, cause, "no usable %s signing key on this node", alg)
	}
	return best, nil
}

// List describes every stored key at the current time.
func (m *Manager) List() []Info {
	now := m.opts.Clock()
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]Info, 0, len(m.keys))
	for i, k := range m.keys {
		info := Info{KID: k.KID, Alg: k.Alg, CreatedAt: k.CreatedAt, ActiveAt: k.ActiveAt, KEKID: k.KEKID, Usable: k.Private != nil}
		// The key retires when the next key of its algorithm that is
		// already active took over.
		var retired time.Time
		for _, n := range m.keys[i+1:] {
			if n.Alg == k.Alg && !n.ActiveAt.After(now) {
				retired = n.ActiveAt
				break
			}
		}
		switch {
		case k.ActiveAt.After(now):
			info.State = StateNext
		case retired.IsZero():
			info.State = StateActive
		default:
			info.RetiredAt = retired
			info.PublishedUntil = retired.Add(m.opts.MaxTokenLifetime)
			info.State = StateRetired
			if !now.Before(info.PublishedUntil) {
				info.State = StateExpired
			}
		}
		out = append(out, info)
	}
	return out
}

// JWKS is the public JSON Web Key Set (RFC 7517 §5): every key that is
// next, active or retired-but-published. No private member ever appears:
// the set is built from the stored public JWKs only. The document is cached
// until the keys reload or the next key changes state.
func (m *Manager) JWKS() ([]byte, error) {
	now := m.opts.Clock()
	m.mu.RLock()
	if m.jwks != nil && m.jwksGen == m.gen && now.Before(m.jwksUntil) {
		b := m.jwks
		m.mu.RUnlock()
		return b, nil
	}
	gen := m.gen
	m.mu.RUnlock()

	infos := m.List()
	published := map[string]bool{}
	until := now.Add(24 * time.Hour)
	for _, i := range infos {
		if i.State != StateExpired {
			published[i.KID] = true
		}
		for _, t := range []time.Time{i.ActiveAt, i.PublishedUntil} {
			if t.After(now) && t.Before(until) {
				until = t
			}
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	set := struct {
		Keys []json.RawMessage `json:"keys"`
	}{Keys: []json.RawMessage{}}
	for _, k := range m.keys {
		if published[k.KID] {
			set.Keys = append(set.Keys, json.RawMessage(k.PublicJWK))
		}
	}
	b, err := json.Marshal(set)
	if err != nil {
		return nil, err
	}
	if m.gen == gen {
		m.jwks, m.jwksGen, m.jwksUntil = b, gen, until
	}
	return b, nil
}

// PublicKey returns the public key with kid, if this node knows it (any
// stored key: next, active or retired). Verifiers use it; whether a token
// signed by a retired key is still acceptable is decided by its expiry.
func (m *Manager) PublicKey(kid string) (*jose.JSONWebKey, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	k, ok := m.public[kid]
	return k, ok
}

// KEKID is the fingerprint of the KEK this node holds.
func (m *Manager) KEKID() string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.kek == nil {
		return ""
	}
	return m.kek.ID
}
