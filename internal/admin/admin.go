// Package admin is smartgate's administration: one service layer that the
// admin console (/admin, server-rendered pages) and the admin JSON API
// (/admin/api, an access token with the smartgate:admin scope) both call,
// so that each operation has one code path and one audit event. It covers
// apps (approval, status, metadata, secrets), users (creation, status,
// passwords, upstream links, TOTP), grants and login sessions, signing
// keys, runtime settings and the audit log.
//
// Every operation takes the acting administrator (an Actor) and records
// an audit event under that actor; reads are not audited.
package admin

import (
	"context"
	"encoding/json"
	"log/slog"
	"time"

	"smartgate/internal/audit"
	"smartgate/internal/identity"
	"smartgate/internal/keys"
	"smartgate/internal/oauth"
	"smartgate/internal/store"
)

// Actor is who acts: an administrator signed in to the console, or the
// holder of an admin token (a user or an admin client).
type Actor struct {
	ID   string // the audit form: "user:<id>" or "client:<id>"
	Name string // for people: the username or the client's name
	Via  string // "console" or "api"
}

// Recorder records audit events (*audit.Writer, identity.Direct).
type Recorder interface {
	Record(ctx context.Context, e audit.Event)
}

// Deps are what the service needs.
type Deps struct {
	Store    store.Store
	Clients  *oauth.Registry
	Users    *identity.Service
	Keys     *keys.Manager
	Settings *Settings
	Audit    Recorder
	Log      *slog.Logger
	Clock    func() time.Time
}

// Service is the administration of one node.
type Service struct {
	d Deps
}

// New returns the service.
func New(d Deps) *Service {
	if d.Clock == nil {
		d.Clock = time.Now
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	return &Service{d: d}
}

// Settings returns the runtime settings the service changes.
func (s *Service) Settings() *Settings { return s.d.Settings }

func (s *Service) now() time.Time { return s.d.Clock().UTC() }

// record writes the audit event of an administrator's action. detail may
// be nil; it never holds a secret.
func (s *Service) record(ctx context.Context, a Actor, action, clientID string, detail map[string]any) {
	if s.d.Audit == nil {
		return
	}
	if detail == nil {
		detail = map[string]any{}
	}
	if a.Via != "" {
		detail["via"] = a.Via
	}
	b, err := json.Marshal(detail)
	if err != nil {
		b = []byte("{}")
	}
	s.d.Audit.Record(ctx, audit.Event{Actor: a.ID, ClientID: clientID, Action: action, Outcome: audit.Success, Detail: string(b)})
}
