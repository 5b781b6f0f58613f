package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"smartgate/internal/audit"
	"smartgate/internal/problem"
	"smartgate/internal/scope"
	"smartgate/internal/store"
)

// LaunchTTL is how long an EHR launch id is valid.
const LaunchTTL = 5 * time.Minute

// LaunchRequest is what an EHR launch carries.
type LaunchRequest struct {
	ClientID    string   // the app launched
	Patient     string   // Patient id
	Encounter   string   // Encounter id, optional
	FHIRContext []string // references (e.g. "DiagnosticReport/123"), optional
	NeedBanner  *bool    // default true
	Intent      string
	CreatedBy   string // who asked: "client:ID" or "cli"
}

// Launched is a created launch.
type Launched struct {
	Launch    string `json:"launch"`
	ISS       string `json:"iss"`
	LaunchURL string `json:"launch_url,omitempty"`
	ExpiresIn int    `json:"expires_in"`
	ClientID  string `json:"client_id"`
}

// ResourceExists reports whether a FHIR resource exists and, when patient
// is not empty, whether it may stand beside that patient in a launch
// context (it is in the patient's compartment, or holds no patient data,
// like a Practitioner or a Location): launch context ids are checked before
// a launch is made.
type ResourceExists func(ctx context.Context, typ, id, patient string) (bool, error)

// CreateLaunch stores a single-use launch context bound to one client and
// returns the app's launch URL. The CLI (smartgate launch) and POST
// /oauth2/launch share it.
func CreateLaunch(ctx context.Context, st store.Store, reg *Registry, exists ResourceExists, fhirBase string, lr LaunchRequest, now time.Time) (*Launched, error) {
	bad := func(format string, args ...any) error { return problem.New(problem.LaunchInvalid, format, args...) }
	c, err := reg.Get(ctx, lr.ClientID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, bad("client %q is not registered", lr.ClientID)
	}
	if err != nil {
		return nil, err
	}
	if c.Status != store.ClientEnabled {
		return nil, bad("client %s is %s; an administrator enables it with: smartgate client enable %s", c.ID, c.Status, c.ID)
	}
	if !hasLaunchScope(c) {
		return nil, bad("client %s did not register the launch scope, so it cannot be launched from the EHR; add it with: smartgate client update %s --scope \"launch ...\"", c.ID, c.ID)
	}
	if lr.Patient == "" {
		return nil, bad("patient is missing: an EHR launch opens the app for one patient")
	}
	check := func(typ, id, patient string) error {
		if !scope.IsResourceType(typ) {
			return bad("%q is not a FHIR resource type", typ)
		}
		if id == "" || len(id) > 64 || strings.ContainsAny(id, "/?#") {
			return bad("%s id %q is not a FHIR id", typ, id)
		}
		ok, err := exists(ctx, typ, id, "")
		if err != nil {
			return err
		}
		if !ok {
			return bad("%s/%s does not exist", typ, id)
		}
		if patient != "" {
			if ok, err = exists(ctx, typ, id, patient); err != nil {
				return err
			}
			if !ok {
				return bad("%s/%s is not part of Patient/%s's record; a launch's encounter and context belong to its patient", typ, id, patient)
			}
		}
		return nil
	}
	if err := check("Patient", lr.Patient, ""); err != nil {
		return nil, err
	}
	lc := launchContext{Patient: lr.Patient, NeedBanner: lr.NeedBanner, Intent: lr.Intent}
	if lr.Encounter != "" {
		if err := check("Encounter", lr.Encounter, lr.Patient); err != nil {
			return nil, err
		}
		lc.Encounter = lr.Encounter
	}
	for _, ref := range lr.FHIRContext {
		typ, id, ok := strings.Cut(ref, "/")
		if !ok {
			return nil, bad("fhir_context %q is not a reference like DiagnosticReport/123", ref)
		}
		if err := check(typ, id, lr.Patient); err != nil {
			return nil, err
		}
		b, _ := json.Marshal(map[string]string{"reference": ref})
		lc.FHIRContext = append(lc.FHIRContext, b)
	}
	if lc.NeedBanner == nil {
		t := true
		lc.NeedBanner = &t
	}
	ctxJSON, err := json.Marshal(lc)
	if err != nil {
		return nil, err
	}
	id, hash := NewSecret()
	if err := st.CreateLaunch(ctx, store.Launch{Hash: hash, ClientID: c.ID, Context: ctxJSON, CreatedBy: lr.CreatedBy, CreatedAt: now.UTC(), ExpiresAt: now.Add(LaunchTTL).UTC()}); err != nil {
		return nil, err
	}
	out := &Launched{Launch: id, ISS: fhirBase, ExpiresIn: int(LaunchTTL / time.Second), ClientID: c.ID}
	if lu := c.Metadata.InitiateLoginURI; lu != "" {
		v := url.Values{}
		v.Set("iss", fhirBase)
		v.Set("launch", id)
		out.LaunchURL = withQuery(lu, v)
	}
	return out, nil
}

func hasLaunchScope(c *Client) bool {
	for _, sc := range c.Scopes {
		if sc.Raw == "launch" {
			return true
		}
	}
	return false
}

// Launch is POST /oauth2/launch: a client an administrator allowed to
// launch (--may-launch), such as an EHR's integration, creates a launch
// context for an app and gets the app's launch URL.
func (s *Server) Launch(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	form, err := parseForm(r)
	if err != nil {
		return err
	}
	caller, err := s.authenticate(ctx, r, form)
	if err != nil {
		return err
	}
	if caller.Type == Public {
		return problem.New(problem.UnauthorizedClient, "client %s is public; launches are made by a confidential client (an EHR integration) that an administrator created with --may-launch", caller.ID)
	}
	if !caller.MayLaunch {
		return problem.New(problem.UnauthorizedClient, "client %s may not create launches; an administrator allows it with: smartgate client update %s --may-launch", caller.ID, caller.ID)
	}
	lr := LaunchRequest{ClientID: form.Get("app_client_id"), Patient: form.Get("patient"), Encounter: form.Get("encounter"),
		FHIRContext: strings.Fields(form.Get("fhir_context")), Intent: form.Get("intent"), CreatedBy: "client:" + caller.ID}
	if lr.ClientID == "" {
		lr.ClientID = caller.ID
	}
	switch v := form.Get("need_patient_banner"); v {
	case "":
	case "true", "false":
		b := v == "true"
		lr.NeedBanner = &b
	default:
		return problem.New(problem.InvalidRequest, "need_patient_banner must be true or false, not %q", v)
	}
	out, err := CreateLaunch(ctx, s.Store, s.Clients, s.Exists, s.Tokens.Audience(), lr, s.Clock())
	if err != nil {
		return err
	}
	s.audit(ctx, audit.Event{Actor: "client:" + caller.ID, ClientID: lr.ClientID, Patient: lr.Patient, Action: "launch.create", Outcome: audit.Success})
	return writeJSON(w, http.StatusCreated, out)
}
