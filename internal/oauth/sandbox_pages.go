package oauth

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"

	"smartgate/internal/audit"
	"smartgate/internal/identity"
	"smartgate/internal/problem"
	"smartgate/internal/store"
)

// The sandbox page (/sandbox, serve --sandbox only; docs/portal.md "The
// sandbox"): a launch simulator like the SMART reference launcher, and the
// error injection of Sandbox. The routes exist only in sandbox mode.

// sandboxApp is an app the simulator can launch.
type sandboxApp struct {
	ID, Name, LaunchURI string
	EHR                 bool // registered the launch scope
}

// sandboxChoice is an option of a datalist.
type sandboxChoice struct{ Value, Label string }

// AMRSandbox marks a login session the launch simulator made (no password
// was typed): id_tokens of such sessions carry amr ["sandbox"].
const AMRSandbox = "sandbox"

// sameHost refuses a sandbox request whose Host is not the issuer's: a
// page of another site that rebinds its DNS name to 127.0.0.1 could
// otherwise read the CSRF token and drive the simulator.
func (p *Portal) sameHost(r *http.Request) error {
	u, err := url.Parse(p.s.Issuer)
	if err != nil || !strings.EqualFold(r.Host, u.Host) {
		return problem.New(problem.InvalidRequest, "the sandbox answers only requests addressed to %s (the Host header was %q)", p.s.Issuer, r.Host)
	}
	return nil
}

// SandboxPage is GET /sandbox.
func (p *Portal) SandboxPage(w http.ResponseWriter, r *http.Request) error {
	if err := p.sameHost(r); err != nil {
		return err
	}
	return p.sandboxPage(w, r, http.StatusOK, nil)
}

func (p *Portal) sandboxPage(w http.ResponseWriter, r *http.Request, status int, extra map[string]any) error {
	ctx := r.Context()
	sb := p.s.Sandbox
	if sb == nil {
		return problem.New(problem.NotFound, "the sandbox runs only under smartgate serve --sandbox")
	}
	clients, err := p.s.Store.ListClients(ctx)
	if err != nil {
		return err
	}
	var apps []sandboxApp
	var all []sandboxChoice
	for _, sc := range clients {
		c := parseClient(sc)
		all = append(all, sandboxChoice{c.ID, clientName(c) + " (" + c.Type + ", " + c.Status + ")"})
		if c.Status != store.ClientEnabled || !slices.Contains(c.Metadata.GrantTypes, "authorization_code") || c.ID == WalkthroughClientID || c.ID == CLIClientID {
			continue
		}
		apps = append(apps, sandboxApp{ID: c.ID, Name: clientName(c), LaunchURI: c.Metadata.InitiateLoginURI, EHR: hasLaunchScope(c)})
	}
	sort.Slice(apps, func(i, j int) bool { return apps[i].ID < apps[j].ID })
	sort.Slice(all, func(i, j int) bool { return all[i].Value < all[j].Value })
	patients, encounters, err := p.sandboxRecords(r)
	if err != nil {
		return err
	}
	users, err := p.s.Store.ListUsers(ctx)
	if err != nil {
		return err
	}
	var people []sandboxChoice
	for _, u := range users {
		if u.Role != store.RoleAdmin && u.Status == store.UserEnabled {
			people = append(people, sandboxChoice{u.Username, u.Role + " " + u.FHIRUser})
		}
	}
	type pendingView struct {
		Injection
		Info InjectKindInfo
	}
	var pend, fired []pendingView
	for _, in := range sb.Pending() {
		info, _ := KindInfo(in.Kind)
		pend = append(pend, pendingView{in, info})
	}
	for _, in := range sb.Fired() {
		info, _ := KindInfo(in.Kind)
		fired = append(fired, pendingView{in, info})
	}
	data := map[string]any{
		"CSRF": p.s.csrfToken(w, r), "Apps": apps, "Clients": all, "Patients": patients, "Encounters": encounters, "Users": people,
		"Kinds": InjectKinds, "Pending": pend, "Fired": fired, "Form": url.Values{},
	}
	for k, v := range extra {
		data[k] = v
	}
	return p.render(w, r, status, "sandbox.html", data)
}

// sandboxRecords lists up to 100 patients and 200 encounters for the
// simulator's suggestions (any id can be typed).
func (p *Portal) sandboxRecords(r *http.Request) (patients, encounters []sandboxChoice, err error) {
	ctx := r.Context()
	res, err := p.s.Store.Search(ctx, store.Query{Type: "Patient", Page: store.Page{Count: 100}})
	if err != nil {
		return nil, nil, problem.Internal(err)
	}
	for _, f := range res.Resources {
		var pt struct {
			Name []struct {
				Text   string   `json:"text"`
				Family string   `json:"family"`
				Given  []string `json:"given"`
			} `json:"name"`
			BirthDate string `json:"birthDate"`
		}
		_ = json.Unmarshal(f.Body, &pt)
		label := ""
		if len(pt.Name) > 0 {
			label = pt.Name[0].Text
			if label == "" {
				label = strings.TrimSpace(strings.Join(pt.Name[0].Given, " ") + " " + pt.Name[0].Family)
			}
		}
		if pt.BirthDate != "" {
			label += ", born " + pt.BirthDate
		}
		patients = append(patients, sandboxChoice{f.ID, label})
	}
	sort.Slice(patients, func(i, j int) bool { return patients[i].Value < patients[j].Value })
	res, err = p.s.Store.Search(ctx, store.Query{Type: "Encounter", Page: store.Page{Count: 200}})
	if err != nil {
		return nil, nil, problem.Internal(err)
	}
	for _, f := range res.Resources {
		var enc struct {
			Subject struct {
				Reference string `json:"reference"`
			} `json:"subject"`
			Period struct {
				Start string `json:"start"`
			} `json:"period"`
		}
		_ = json.Unmarshal(f.Body, &enc)
		encounters = append(encounters, sandboxChoice{f.ID, enc.Subject.Reference + " " + enc.Period.Start})
	}
	sort.Slice(encounters, func(i, j int) bool { return encounters[i].Value < encounters[j].Value })
	return patients, encounters, nil
}

// sandboxRefuse shows the sandbox page again with what was wrong.
func (p *Portal) sandboxRefuse(w http.ResponseWriter, r *http.Request, form url.Values, err error) error {
	pe := problem.From(err)
	if pe.HTTPStatus() >= 500 {
		return err
	}
	p.s.Errors.LogOnly(r, err)
	return p.sandboxPage(w, r, pe.HTTPStatus(), map[string]any{"Error": pe.Description, "Form": form})
}

// SandboxLaunch is POST /sandbox/launch: the launch simulator. An EHR
// launch creates a launch context (oauth.CreateLaunch, as smartgate launch
// and POST /oauth2/launch do) and opens the app's launch URL with iss and
// launch; a standalone launch opens it with iss alone. With a user chosen,
// the browser is first signed in as that user (no password: sandbox only,
// never an administrator), as the reference launcher's "skip login".
func (p *Portal) SandboxLaunch(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	if err := p.sameHost(r); err != nil {
		return err
	}
	if err := p.s.parsePageForm(r); err != nil {
		return err
	}
	f := r.PostForm
	c, err := p.s.Clients.Get(ctx, f.Get("client_id"))
	if errors.Is(err, store.ErrNotFound) || f.Get("client_id") == "" {
		return p.sandboxRefuse(w, r, f, problem.New(problem.LaunchInvalid, "choose an app to launch"))
	}
	if err != nil {
		return err
	}
	if username := strings.TrimSpace(f.Get("user")); username != "" {
		u, err := p.s.Store.GetUserByUsername(ctx, username)
		if errors.Is(err, store.ErrNotFound) || (err == nil && (u.Status != store.UserEnabled || u.Role == store.RoleAdmin)) {
			return p.sandboxRefuse(w, r, f, problem.New(problem.LaunchInvalid, "the simulator signs in only enabled users who are not administrators; %q is not one", username))
		}
		if err != nil {
			return err
		}
		id, sess, err := p.s.Users.CreateSession(ctx, identity.Login{User: u, AuthTime: p.s.Clock(), AMR: []string{AMRSandbox}})
		if err != nil {
			return err
		}
		p.s.setCookie(w, sessionCookie, id, sess.ExpiresAt.Sub(p.s.Clock()))
		p.s.audit(ctx, audit.Event{Actor: "user:" + u.ID, Action: "login.success", Outcome: audit.Success, Detail: detail("amr", AMRSandbox, "via", "sandbox launch simulator")})
	}
	fhirBase := p.s.Tokens.Audience()
	switch f.Get("launch_type") {
	case "standalone":
		if c.Metadata.InitiateLoginURI == "" {
			return p.sandboxRefuse(w, r, f, problem.New(problem.LaunchInvalid, "client %s registered no launch URL (initiate_login_uri), so there is nothing to open; start the app yourself, or register a launch URL", c.ID))
		}
		v := url.Values{}
		v.Set("iss", fhirBase)
		http.Redirect(w, r, withQuery(c.Metadata.InitiateLoginURI, v), http.StatusSeeOther)
		return nil
	case "ehr":
	default:
		return p.sandboxRefuse(w, r, f, problem.New(problem.LaunchInvalid, "choose an EHR launch or a standalone launch"))
	}
	lr := LaunchRequest{ClientID: c.ID, Patient: strings.TrimSpace(f.Get("patient")), Encounter: strings.TrimSpace(f.Get("encounter")),
		FHIRContext: strings.Fields(f.Get("fhir_context")), CreatedBy: "sandbox"}
	out, err := CreateLaunch(ctx, p.s.Store, p.s.Clients, p.s.Exists, fhirBase, lr, p.s.Clock())
	if err != nil {
		return p.sandboxRefuse(w, r, f, err)
	}
	p.s.audit(ctx, audit.Event{Actor: "sandbox", ClientID: c.ID, Patient: lr.Patient, Action: "launch.create", Outcome: audit.Success})
	if out.LaunchURL != "" {
		http.Redirect(w, r, out.LaunchURL, http.StatusSeeOther)
		return nil
	}
	return p.sandboxPage(w, r, http.StatusCreated, map[string]any{"Launched": out, "Form": f})
}

// SandboxInject is POST /sandbox/inject: arm an error for a client's next
// request of its kind, or (action=cancel) disarm one.
func (p *Portal) SandboxInject(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	if err := p.sameHost(r); err != nil {
		return err
	}
	if err := p.s.parsePageForm(r); err != nil {
		return err
	}
	f := r.PostForm
	id, kind := strings.TrimSpace(f.Get("client_id")), InjectKind(f.Get("kind"))
	if f.Get("action") == "cancel" {
		p.s.Sandbox.Cancel(id, kind)
		http.Redirect(w, r, "/sandbox#injections", http.StatusSeeOther)
		return nil
	}
	c, err := p.s.Clients.Get(ctx, id)
	if errors.Is(err, store.ErrNotFound) || id == "" {
		return p.sandboxRefuse(w, r, f, problem.New(problem.InvalidRequest, "client_id %q is not registered here", id))
	}
	if err != nil {
		return err
	}
	if err := p.s.Sandbox.Inject(c, kind); err != nil {
		return p.sandboxRefuse(w, r, f, err)
	}
	p.s.Log.Info("sandbox: error armed", "client_id", c.ID, "kind", string(kind))
	http.Redirect(w, r, "/sandbox#injections", http.StatusSeeOther)
	return nil
}
