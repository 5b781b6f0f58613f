package storetest

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"smartgate/internal/store"
)

func oauthTests() []struct {
	name string
	fn   func(t *testing.T, b Backend)
} {
	return []struct {
		name string
		fn   func(t *testing.T, b Backend)
	}{
		{"ClientsCRUD", testClientsCRUD},
		{"ClientsUpdateRollback", testClientsUpdateRollback},
		{"ClientsPKCEExemptRequirePARLogoutURIs", testClientsNewFields},
		{"GrantsAndRefreshRotation", testGrantsRotation},
		{"GrantsLastUsed", testGrantsLastUsed},
		{"GrantsBySubject", testGrantsBySubject},
		{"RevokeSessionGrants", testRevokeSessionGrants},
		{"RefreshReuseRevokesGrant", testRefreshReuse},
		{"RefreshConcurrentRotationOnce", testRefreshConcurrent},
		{"RefreshGraceWindow", testRefreshGrace},
		{"Revocations", testRevocations},
		{"AssertionsOnceAcrossHandles", testAssertions},
		{"InitialAccessTokens", testInitialAccessTokens},
	}
}

func hash(s string) []byte { h := sha256.Sum256([]byte(s)); return h[:] }

func sampleClient(id string) store.Client {
	t0 := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	return store.Client{
		ID: id, Type: "confidential-asymmetric", Status: store.ClientEnabled, Verified: true,
		Metadata: store.ClientMetadata{
			GrantTypes: []string{"client_credentials"}, TokenEndpointAuthMethod: "private_key_jwt",
			ClientName: "Lab sync", Scope: "system/Observation.rs", JWKS: json.RawMessage(`{"keys":[]}`),
			Contacts: []string{"ops@example.org"},
		},
		SecretHash: nil, RegistrationTokenHash: hash("rat-" + id), IntrospectAny: true, Admin: false,
		CreatedBy: "admin", CreatedAt: t0, UpdatedAt: t0,
	}
}

func testClientsCRUD(t *testing.T, b Backend) {
	s, _ := migrated(t, b)
	c := ctx(t)
	want := sampleClient("lab")
	before, _ := s.LatestChange(c)
	if err := s.CreateClient(c, want); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateClient(c, want); !errors.Is(err, store.ErrConflict) {
		t.Errorf("duplicate CreateClient = %v, want ErrConflict", err)
	}
	got, err := s.GetClient(c, "lab")
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("GetClient (-want +got):\n%s", d)
	}
	if after, _ := s.LatestChange(c); after != before+1 {
		t.Errorf("CreateClient recorded %d changes, want 1", after-before)
	}
	if _, err := s.GetClient(c, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetClient(unknown) = %v, want ErrNotFound", err)
	}
	pub := sampleClient("app")
	pub.Type, pub.Status, pub.Verified, pub.SecretHash = "public", store.ClientPending, false, nil
	pub.CreatedAt = pub.CreatedAt.Add(time.Second)
	if err := s.CreateClient(c, pub); err != nil {
		t.Fatal(err)
	}
	list, err := s.ListClients(c)
	if err != nil || len(list) != 2 || list[0].ID != "lab" || list[1].ID != "app" {
		t.Fatalf("ListClients = %v, %v", list, err)
	}
	err = s.UpdateClient(c, "app", func(cl *store.Client) error {
		cl.Status = store.ClientEnabled
		cl.SecretHash = hash("secret")
		cl.SecretExpiresAt = time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got, _ = s.GetClient(c, "app")
	if got.Status != store.ClientEnabled || !bytes.Equal(got.SecretHash, hash("secret")) || got.SecretExpiresAt.Year() != 2027 {
		t.Errorf("after update: %+v", got)
	}
	if err := s.UpdateClient(c, "nope", func(*store.Client) error { return nil }); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UpdateClient(unknown) = %v", err)
	}
	// Delete takes the client's grants and refresh tokens with it.
	g := store.Grant{ID: "g-app", ClientID: "app", Subject: "u1", Scope: "openid", CreatedAt: time.Now()}
	if err := s.CreateGrant(c, g, &store.RefreshToken{Hash: hash("rt-app"), CreatedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteClient(c, "app"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetClient(c, "app"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("client still there after DeleteClient: %v", err)
	}
	if _, _, err := s.FindRefreshToken(c, hash("rt-app")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("refresh token survived its client: %v", err)
	}
	if err := s.DeleteClient(c, "app"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second DeleteClient = %v, want ErrNotFound", err)
	}
	if err := s.ForgetConsents(c, "lab"); err != nil {
		t.Errorf("ForgetConsents: %v", err)
	}
}

func testClientsUpdateRollback(t *testing.T, b Backend) {
	s, _ := migrated(t, b)
	c := ctx(t)
	if err := s.CreateClient(c, sampleClient("lab")); err != nil {
		t.Fatal(err)
	}
	before, _ := s.LatestChange(c)
	boom := errors.New("refused")
	err := s.UpdateClient(c, "lab", func(cl *store.Client) error {
		cl.Status = store.ClientDisabled
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("UpdateClient = %v, want the updater's error", err)
	}
	if got, _ := s.GetClient(c, "lab"); got.Status != store.ClientEnabled {
		t.Errorf("a failed update changed the status to %s", got.Status)
	}
	if after, _ := s.LatestChange(c); after != before {
		t.Errorf("a failed update recorded a change")
	}
}

// testClientsNewFields: the PKCE exemption, the PAR requirement (RFC 9126
// §5) and the RP-initiated logout and launch URIs survive every write and
// read path, both set and unset.
func testClientsNewFields(t *testing.T, b Backend) {
	s, _ := migrated(t, b)
	c := ctx(t)
	rp := sampleClient("rp")
	rp.Type, rp.PKCEExempt, rp.RequirePAR = "confidential-symmetric", true, true
	rp.Metadata.PostLogoutRedirectURIs = []string{"https://rp.example/bye", "https://rp.example/bye?x=1"}
	rp.Metadata.InitiateLoginURI = "https://rp.example/launch"
	plain := sampleClient("plain")
	plain.CreatedAt = plain.CreatedAt.Add(time.Second)
	for _, cl := range []store.Client{rp, plain} {
		if err := s.CreateClient(c, cl); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []store.Client{rp, plain} {
		got, err := s.GetClient(c, want.ID)
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("GetClient(%s) (-want +got):\n%s", want.ID, d)
		}
	}
	list, err := s.ListClients(c)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]store.Client{rp, plain}, list); d != "" {
		t.Errorf("ListClients (-want +got):\n%s", d)
	}
	// Update flips every new field both ways.
	flip := func(cl *store.Client) error {
		cl.PKCEExempt, cl.RequirePAR = !cl.PKCEExempt, !cl.RequirePAR
		if cl.Metadata.InitiateLoginURI == "" {
			cl.Metadata.InitiateLoginURI = "https://" + cl.ID + ".example/launch"
			cl.Metadata.PostLogoutRedirectURIs = []string{"https://" + cl.ID + ".example/bye"}
		} else {
			cl.Metadata.InitiateLoginURI, cl.Metadata.PostLogoutRedirectURIs = "", nil
		}
		return nil
	}
	for _, want := range []store.Client{rp, plain} {
		if err := s.UpdateClient(c, want.ID, flip); err != nil {
			t.Fatal(err)
		}
		_ = flip(&want)
		got, err := s.GetClient(c, want.ID)
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("GetClient(%s) after update (-want +got):\n%s", want.ID, d)
		}
	}
	// The updater sees the stored values.
	err = s.UpdateClient(c, "plain", func(cl *store.Client) error {
		if !cl.PKCEExempt || !cl.RequirePAR || cl.Metadata.InitiateLoginURI != "https://plain.example/launch" {
			t.Errorf("UpdateClient's updater got %+v, want the stored flags and URIs", cl)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func newGrant(t *testing.T, s store.Store, id string, now time.Time) {
	t.Helper()
	g := store.Grant{ID: id, ClientID: "app", Subject: "Patient/1", Scope: "patient/*.rs offline_access",
		Context: json.RawMessage(`{"patient":"1"}`), CreatedAt: now, ExpiresAt: now.Add(365 * 24 * time.Hour)}
	rt := &store.RefreshToken{Hash: hash(id + "-rt0"), CreatedAt: now, ExpiresAt: now.Add(90 * 24 * time.Hour)}
	if err := s.CreateGrant(ctx(t), g, rt); err != nil {
		t.Fatal(err)
	}
}

func testGrantsRotation(t *testing.T, b Backend) {
	s, _ := migrated(t, b)
	c := ctx(t)
	now := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	newGrant(t, s, "g1", now)
	g, err := s.GetGrant(c, "g1")
	if err != nil || g.Subject != "Patient/1" || string(g.Context) != `{"patient":"1"}` || !g.RevokedAt.IsZero() {
		t.Fatalf("GetGrant = %+v, %v", g, err)
	}
	if !g.LastUsedAt.Equal(now) {
		t.Errorf("new grant's LastUsedAt = %v, want its CreatedAt %v", g.LastUsedAt, now)
	}
	next := store.RefreshToken{Hash: hash("g1-rt1"), CreatedAt: now.Add(time.Minute), ExpiresAt: now.Add(91 * 24 * time.Hour)}
	got, err := s.RotateRefreshToken(c, hash("g1-rt0"), now.Add(time.Minute), 0, next)
	if err != nil || got.ID != "g1" {
		t.Fatalf("RotateRefreshToken = %+v, %v", got, err)
	}
	rt, g2, err := s.FindRefreshToken(c, hash("g1-rt1"))
	if err != nil || rt.GrantID != "g1" || g2.ID != "g1" || !rt.UsedAt.IsZero() {
		t.Errorf("new token: %+v %+v %v", rt, g2, err)
	}
	old, _, _ := s.FindRefreshToken(c, hash("g1-rt0"))
	if old.UsedAt.IsZero() {
		t.Errorf("old token not marked used")
	}
	if _, err := s.RotateRefreshToken(c, hash("unknown"), now, 0, next); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown token: %v", err)
	}
	// Idle expiry.
	later := now.Add(92 * 24 * time.Hour)
	if _, err := s.RotateRefreshToken(c, hash("g1-rt1"), later, 0, store.RefreshToken{Hash: hash("g1-rt2"), CreatedAt: later, ExpiresAt: later.Add(time.Hour)}); !errors.Is(err, store.ErrExpired) {
		t.Errorf("expired token: %v, want ErrExpired", err)
	}
	// Revoking the grant: its refresh tokens stop working and a revocation is recorded.
	newGrant(t, s, "g2", now)
	before, _ := s.RevocationsAfter(c, 0, now)
	if err := s.RevokeGrant(c, "g2", now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RotateRefreshToken(c, hash("g2-rt0"), now.Add(2*time.Hour), 0, store.RefreshToken{Hash: hash("x"), CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); err == nil {
		t.Errorf("refresh of a revoked grant succeeded")
	}
	after, _ := s.RevocationsAfter(c, 0, now)
	if len(after) != len(before)+1 || after[len(after)-1].Kind != store.RevokeGrant || after[len(after)-1].Value != "g2" {
		t.Errorf("revocations after RevokeGrant: %+v", after)
	}
	if err := s.RevokeGrant(c, "g2", now.Add(3*time.Hour)); err != nil {
		t.Errorf("revoking twice: %v", err)
	}
	// RevokeClientGrants: every live grant of the client, not others'.
	newGrant(t, s, "g3", now)
	newGrant(t, s, "g4", now)
	other := store.Grant{ID: "g5", ClientID: "other", Subject: "u", Scope: "openid", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	if err := s.CreateGrant(c, other, &store.RefreshToken{Hash: hash("g5-rt0"), CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeClientGrants(c, "app", now.Add(4*time.Hour)); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"g3", "g4"} {
		if g, _ := s.GetGrant(c, id); g.RevokedAt.IsZero() {
			t.Errorf("grant %s of the client survived RevokeClientGrants", id)
		}
		if _, _, err := s.FindRefreshToken(c, hash(id+"-rt0")); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("refresh token of %s survived: %v", id, err)
		}
	}
	if g, _ := s.GetGrant(c, "g5"); !g.RevokedAt.IsZero() {
		t.Errorf("another client's grant was revoked")
	}
}

// testGrantsLastUsed: creation is a grant's first use (unless the caller
// says otherwise) and every successful rotation is another; failed
// rotations are not.
func testGrantsLastUsed(t *testing.T, b Backend) {
	s, _ := migrated(t, b)
	c := ctx(t)
	now := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	newGrant(t, s, "g", now)
	explicit := store.Grant{ID: "g-explicit", ClientID: "app", Subject: "u", Scope: "openid", CreatedAt: now,
		ExpiresAt: now.Add(time.Hour), LastUsedAt: now.Add(time.Minute)}
	if err := s.CreateGrant(c, explicit, nil); err != nil {
		t.Fatal(err)
	}
	if g, _ := s.GetGrant(c, "g-explicit"); !g.LastUsedAt.Equal(explicit.LastUsedAt) {
		t.Errorf("CreateGrant with LastUsedAt %v stored %v", explicit.LastUsedAt, g.LastUsedAt)
	}
	rotate := func(old, next string, at time.Time, grace time.Duration) (store.Grant, error) {
		return s.RotateRefreshToken(c, hash(old), at, grace, store.RefreshToken{Hash: hash(next), CreatedAt: at, ExpiresAt: at.Add(24 * time.Hour)})
	}
	// The database keeps microseconds; a time with nanoseconds comes back truncated.
	t1 := now.Add(time.Hour + 1500*time.Nanosecond)
	want := t1.Truncate(time.Microsecond)
	got, err := rotate("g-rt0", "g-rt1", t1, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !got.LastUsedAt.Equal(want) {
		t.Errorf("RotateRefreshToken returned LastUsedAt %v, want %v", got.LastUsedAt, want)
	}
	if g, _ := s.GetGrant(c, "g"); !g.LastUsedAt.Equal(want) || !g.CreatedAt.Equal(now) {
		t.Errorf("GetGrant after rotation: LastUsedAt %v, CreatedAt %v; want %v, %v", g.LastUsedAt, g.CreatedAt, want, now)
	}
	if _, g, _ := s.FindRefreshToken(c, hash("g-rt1")); !g.LastUsedAt.Equal(want) {
		t.Errorf("FindRefreshToken's grant: LastUsedAt %v, want %v", g.LastUsedAt, want)
	}
	// A retry within grace is a use too.
	t2 := t1.Add(2 * time.Second).Truncate(time.Microsecond)
	if _, err := rotate("g-rt0", "g-rt1b", t2, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if g, _ := s.GetGrant(c, "g"); !g.LastUsedAt.Equal(t2) {
		t.Errorf("after a retry within grace: LastUsedAt %v, want %v", g.LastUsedAt, t2)
	}
	// An expired token is no use.
	late := now.Add(30 * 24 * time.Hour)
	if _, err := rotate("g-rt1", "g-rt2", late, 0); !errors.Is(err, store.ErrExpired) {
		t.Fatalf("rotating an expired token = %v, want ErrExpired", err)
	}
	if g, _ := s.GetGrant(c, "g"); !g.LastUsedAt.Equal(t2) {
		t.Errorf("a failed rotation moved LastUsedAt to %v, want %v", g.LastUsedAt, t2)
	}
}

// testGrantsBySubject: a user's live grants, most recently used first.
func testGrantsBySubject(t *testing.T, b Backend) {
	s, _ := migrated(t, b)
	c := ctx(t)
	now := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	if gs, err := s.ListGrantsBySubject(c, "u1", now); err != nil || len(gs) != 0 {
		t.Fatalf("ListGrantsBySubject on an empty store = %v, %v; want none", gs, err)
	}
	mk := func(id, subject string, created, expires time.Time) {
		t.Helper()
		g := store.Grant{ID: id, ClientID: "app", Subject: subject, Scope: "openid patient/*.rs", SessionID: "s-" + id,
			Context: json.RawMessage(`{"patient":"1"}`), CreatedAt: created, ExpiresAt: expires}
		if err := s.CreateGrant(c, g, &store.RefreshToken{Hash: hash(id + "-rt0"), CreatedAt: created, ExpiresAt: created.Add(48 * time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	day := 24 * time.Hour
	mk("oldest", "u1", now.Add(-3*time.Hour), now.Add(day))
	mk("middle", "u1", now.Add(-2*time.Hour), now.Add(day))
	mk("newest", "u1", now.Add(-time.Hour), now.Add(day))
	mk("forever", "u1", now.Add(-4*time.Hour), time.Time{}) // no absolute end: live until revoked
	mk("revoked", "u1", now.Add(-time.Minute), now.Add(day))
	mk("expired", "u1", now.Add(-2*day), now.Add(-time.Second))
	mk("ends-now", "u1", now.Add(-day), now) // ExpiresAt must be after now
	mk("other-user", "u2", now.Add(-time.Minute), now.Add(day))
	if err := s.RevokeGrant(c, "revoked", now.Add(-30*time.Second)); err != nil {
		t.Fatal(err)
	}
	// Using the oldest grant makes it the most recently used.
	if _, err := s.RotateRefreshToken(c, hash("oldest-rt0"), now.Add(-10*time.Minute), 0,
		store.RefreshToken{Hash: hash("oldest-rt1"), CreatedAt: now, ExpiresAt: now.Add(day)}); err != nil {
		t.Fatal(err)
	}
	gs, err := s.ListGrantsBySubject(c, "u1", now)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, g := range gs {
		ids = append(ids, g.ID)
	}
	if d := cmp.Diff([]string{"oldest", "newest", "middle", "forever"}, ids); d != "" {
		t.Errorf("ListGrantsBySubject(u1) ids (-want +got):\n%s", d)
	}
	// The listed grants are whole.
	want, _ := s.GetGrant(c, "middle")
	if len(gs) > 2 {
		if d := cmp.Diff(want, gs[2]); d != "" {
			t.Errorf("listed grant (-GetGrant +listed):\n%s", d)
		}
	}
	if gs, _ := s.ListGrantsBySubject(c, "u2", now); len(gs) != 1 || gs[0].ID != "other-user" {
		t.Errorf("ListGrantsBySubject(u2) = %+v, want only other-user", gs)
	}
	if gs, _ := s.ListGrantsBySubject(c, "nobody", now); len(gs) != 0 {
		t.Errorf("ListGrantsBySubject(nobody) = %+v, want none", gs)
	}
	// A day later only the grant with no absolute end is left.
	if gs, _ := s.ListGrantsBySubject(c, "u1", now.Add(2*day)); len(gs) != 1 || gs[0].ID != "forever" {
		t.Errorf("ListGrantsBySubject(u1, a day later) = %+v, want only forever", gs)
	}
}

// testRevokeSessionGrants: ending a login session revokes its live grants
// (online_access, SMART App Launch) with a grant revocation each, as
// RevokeGrant does, and nothing else.
func testRevokeSessionGrants(t *testing.T, b Backend) {
	s, _ := migrated(t, b)
	c := ctx(t)
	now := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	mk := func(id, session string, expires time.Time) {
		t.Helper()
		g := store.Grant{ID: id, ClientID: "app", Subject: "u1", Scope: "openid online_access", SessionID: session,
			CreatedAt: now.Add(-time.Hour), ExpiresAt: expires}
		if err := s.CreateGrant(c, g, &store.RefreshToken{Hash: hash(id + "-rt0"), CreatedAt: now.Add(-time.Hour), ExpiresAt: now.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	mk("a1", "sess-a", now.Add(time.Hour))
	mk("a2", "sess-a", time.Time{})
	mk("a-revoked", "sess-a", now.Add(time.Hour))
	mk("a-expired", "sess-a", now.Add(-time.Minute))
	mk("b1", "sess-b", now.Add(time.Hour))
	mk("none", "", now.Add(time.Hour)) // offline grant: no session
	if err := s.RevokeGrant(c, "a-revoked", now.Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	before, err := s.RevocationsAfter(c, 0, now)
	if err != nil {
		t.Fatal(err)
	}
	var last int64
	if len(before) > 0 {
		last = before[len(before)-1].ID
	}
	changes, _ := s.LatestChange(c)

	// An empty session id names no session.
	if n, err := s.RevokeSessionGrants(c, "", now); err != nil || n != 0 {
		t.Errorf(`RevokeSessionGrants("") = %d, %v; want 0, nil`, n, err)
	}
	if g, _ := s.GetGrant(c, "none"); !g.RevokedAt.IsZero() {
		t.Errorf(`RevokeSessionGrants("") revoked the grant with no session`)
	}
	if n, err := s.RevokeSessionGrants(c, "sess-unknown", now); err != nil || n != 0 {
		t.Errorf("RevokeSessionGrants(unknown) = %d, %v; want 0, nil", n, err)
	}
	if got, _ := s.RevocationsAfter(c, last, now); len(got) != 0 {
		t.Errorf("revoking no grants recorded revocations %+v", got)
	}

	at := now.Add(time.Second)
	n, err := s.RevokeSessionGrants(c, "sess-a", at)
	if err != nil || n != 2 {
		t.Fatalf("RevokeSessionGrants(sess-a) = %d, %v; want 2, nil", n, err)
	}
	for _, id := range []string{"a1", "a2"} {
		g, _ := s.GetGrant(c, id)
		if !g.RevokedAt.Equal(at) {
			t.Errorf("grant %s: RevokedAt %v, want %v", id, g.RevokedAt, at)
		}
		if _, _, err := s.FindRefreshToken(c, hash(id+"-rt0")); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("refresh token of %s survived its session: %v", id, err)
		}
	}
	if g, _ := s.GetGrant(c, "a-revoked"); !g.RevokedAt.Equal(now.Add(-time.Minute)) {
		t.Errorf("an already revoked grant was revoked again at %v", g.RevokedAt)
	}
	for _, id := range []string{"a-expired", "b1", "none"} {
		if g, _ := s.GetGrant(c, id); !g.RevokedAt.IsZero() {
			t.Errorf("grant %s is not a live grant of sess-a but was revoked", id)
		}
	}
	got, err := s.RevocationsAfter(c, last, now)
	if err != nil {
		t.Fatal(err)
	}
	var revoked []string
	for _, r := range got {
		if r.Kind != store.RevokeGrant || !r.RevokedAt.Equal(at) || !r.ExpiresAt.After(at) {
			t.Errorf("revocation %+v, want kind %q revoked at %v and expiring later", r, store.RevokeGrant, at)
		}
		revoked = append(revoked, r.Value)
	}
	sort.Strings(revoked)
	if d := cmp.Diff([]string{"a1", "a2"}, revoked); d != "" {
		t.Errorf("revocations recorded (-want +got):\n%s", d)
	}
	// Every revocation is announced on the change feed, as RevokeGrant's is.
	if after, _ := s.LatestChange(c); after != changes+2 {
		t.Errorf("RevokeSessionGrants recorded %d changes, want 2 (one per revocation)", after-changes)
	}
	// Again: nothing live is left in the session.
	if n, err := s.RevokeSessionGrants(c, "sess-a", at.Add(time.Second)); err != nil || n != 0 {
		t.Errorf("second RevokeSessionGrants(sess-a) = %d, %v; want 0, nil", n, err)
	}
}

func testRefreshReuse(t *testing.T, b Backend) {
	s, _ := migrated(t, b)
	c := ctx(t)
	now := time.Now().UTC()
	newGrant(t, s, "g", now)
	rt1 := store.RefreshToken{Hash: hash("g-rt1"), CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	if _, err := s.RotateRefreshToken(c, hash("g-rt0"), now, 0, rt1); err != nil {
		t.Fatal(err)
	}
	_, err := s.RotateRefreshToken(c, hash("g-rt0"), now.Add(time.Second), 0, store.RefreshToken{Hash: hash("g-rt1b"), CreatedAt: now, ExpiresAt: now.Add(time.Hour)})
	if !errors.Is(err, store.ErrRefreshReused) {
		t.Fatalf("reuse = %v, want ErrRefreshReused", err)
	}
	g, _ := s.GetGrant(c, "g")
	if g.RevokedAt.IsZero() {
		t.Errorf("reuse did not revoke the grant")
	}
	if _, err := s.RotateRefreshToken(c, hash("g-rt1"), now.Add(2*time.Second), 0, store.RefreshToken{Hash: hash("g-rt2"), CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); err == nil {
		t.Errorf("the legitimate holder's token still works after reuse revoked the grant")
	}
}

func testRefreshConcurrent(t *testing.T, b Backend) {
	s, dsn := migrated(t, b)
	c := ctx(t)
	now := time.Now().UTC()
	newGrant(t, s, "g", now)
	handles := []store.Store{s, b.Open(t, dsn), b.Open(t, dsn), b.Open(t, dsn)}
	var wg sync.WaitGroup
	results := make([]error, len(handles))
	for i, h := range handles {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, results[i] = h.RotateRefreshToken(c, hash("g-rt0"), now, 0, store.RefreshToken{Hash: hash(fmt.Sprint("g-next", i)), CreatedAt: now, ExpiresAt: now.Add(time.Hour)})
		}()
	}
	wg.Wait()
	ok := 0
	for _, err := range results {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, store.ErrRefreshReused), errors.Is(err, store.ErrGrantRevoked):
		default:
			t.Errorf("concurrent rotation: unexpected error %v", err)
		}
	}
	if ok != 1 {
		t.Errorf("%d concurrent rotations of one refresh token succeeded, want exactly 1 (%v)", ok, results)
	}
	if g, _ := s.GetGrant(c, "g"); g.RevokedAt.IsZero() {
		t.Errorf("concurrent reuse did not revoke the grant")
	}
}

func testRefreshGrace(t *testing.T, b Backend) {
	s, _ := migrated(t, b)
	c := ctx(t)
	now := time.Now().UTC()
	newGrant(t, s, "g", now)
	if _, err := s.RotateRefreshToken(c, hash("g-rt0"), now, 5*time.Second, store.RefreshToken{Hash: hash("a"), CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	// A retry within the grace window (a lost response) succeeds.
	if _, err := s.RotateRefreshToken(c, hash("g-rt0"), now.Add(2*time.Second), 5*time.Second, store.RefreshToken{Hash: hash("b"), CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Errorf("retry within the grace window: %v", err)
	}
	// After the window it is reuse.
	if _, err := s.RotateRefreshToken(c, hash("g-rt0"), now.Add(10*time.Second), 5*time.Second, store.RefreshToken{Hash: hash("c"), CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); !errors.Is(err, store.ErrRefreshReused) {
		t.Errorf("use after the grace window = %v, want ErrRefreshReused", err)
	}
}

func testRevocations(t *testing.T, b Backend) {
	s, dsn := migrated(t, b)
	c := ctx(t)
	now := time.Now().UTC().Truncate(time.Microsecond)
	before, _ := s.LatestChange(c)
	for i, r := range []store.Revocation{
		{Kind: store.RevokeJTI, Value: "j1", RevokedAt: now, ExpiresAt: now.Add(time.Hour)},
		{Kind: store.RevokeClient, Value: "app", RevokedAt: now, ExpiresAt: now.Add(2 * time.Hour)},
		{Kind: store.RevokeSubject, Value: "Patient/1", RevokedAt: now, ExpiresAt: now.Add(-time.Minute)},
	} {
		if err := s.Revoke(c, r); err != nil {
			t.Fatalf("Revoke %d: %v", i, err)
		}
	}
	if after, _ := s.LatestChange(c); after != before+3 {
		t.Errorf("3 revocations recorded %d changes", after-before)
	}
	other := b.Open(t, dsn)
	got, err := other.RevocationsAfter(c, 0, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Value != "j1" || got[1].Kind != store.RevokeClient || !got[0].RevokedAt.Equal(now) {
		t.Fatalf("RevocationsAfter(0) = %+v, want the two unexpired ones in order", got)
	}
	tail, _ := other.RevocationsAfter(c, got[0].ID, now)
	if len(tail) != 1 || tail[0].Value != "app" {
		t.Errorf("RevocationsAfter(first) = %+v", tail)
	}
	if err := s.PruneRevocations(c, now.Add(90*time.Minute)); err != nil {
		t.Fatal(err)
	}
	left, _ := s.RevocationsAfter(c, 0, now)
	if len(left) != 1 || left[0].Value != "app" {
		t.Errorf("after prune: %+v", left)
	}
}

func testAssertions(t *testing.T, b Backend) {
	s, dsn := migrated(t, b)
	c := ctx(t)
	now := time.Now().UTC()
	handles := []store.Store{s, b.Open(t, dsn), b.Open(t, dsn)}
	var wg sync.WaitGroup
	var mu sync.Mutex
	fresh := 0
	for _, h := range handles {
		for j := 0; j < 3; j++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ok, err := h.UseAssertion(c, "lab", "jti-1", now.Add(5*time.Minute), now)
				if err != nil {
					t.Errorf("UseAssertion: %v", err)
				}
				if ok {
					mu.Lock()
					fresh++
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	if fresh != 1 {
		t.Errorf("jti accepted %d times across 3 handles, want exactly once", fresh)
	}
	if ok, _ := s.UseAssertion(c, "other-client", "jti-1", now.Add(time.Minute), now); !ok {
		t.Errorf("the same jti from another client was refused; the pair is (client_id, jti)")
	}
	// After expiry the pair may be recorded again (the assertion's exp check refuses it anyway).
	if ok, _ := s.UseAssertion(c, "lab", "jti-1", now.Add(20*time.Minute), now.Add(10*time.Minute)); !ok {
		t.Errorf("an expired jti record blocked a new one")
	}
	if err := s.PruneAssertions(c, now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
}

func testInitialAccessTokens(t *testing.T, b Backend) {
	s, _ := migrated(t, b)
	c := ctx(t)
	now := time.Now().UTC()
	if err := s.CreateInitialAccessToken(c, hash("iat"), now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		token string
		at    time.Time
		want  bool
	}{{"iat", now, true}, {"other", now, false}, {"iat", now.Add(2 * time.Hour), false}} {
		got, err := s.CheckInitialAccessToken(c, hash(tc.token), tc.at)
		if err != nil || got != tc.want {
			t.Errorf("CheckInitialAccessToken(%s, %v) = %v, %v; want %v", tc.token, tc.at, got, err, tc.want)
		}
	}
}
