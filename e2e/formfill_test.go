package e2e

// A headless form filler for the browser steps of the authorization flow
// (docs/dev/authorize-contract.md, "Browser pages"): an http.Client with a
// cookie jar that follows the server's redirects, parses the real HTML
// pages with golang.org/x/net/html and submits their forms exactly as a
// browser would (every successful control: hidden fields, csrf_token,
// ticked checkboxes, the pressed button's name=value). It stops at the
// redirect that leaves the server for the app's redirect_uri and never
// follows it. There is no shortcut around a page.

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"
)

// headless is one browser: its cookies are its login session.
type headless struct {
	t    *testing.T
	base *url.URL // the server's origin; redirects elsewhere end a flow
	jar  *cookiejar.Jar
	hc   *http.Client
}

func newHeadless(t *testing.T, base string) *headless {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &headless{t: t, base: u, jar: jar, hc: &http.Client{
		Jar:     jar,
		Timeout: 10 * time.Second,
		// The loop in send follows redirects itself, to stop at the app's.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// cookie returns the value of the browser's cookie name for the server.
func (b *headless) cookie(name string) string {
	for _, c := range b.jar.Cookies(b.base) {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

// landing is where a navigation ended: a page of the server (page set),
// or a redirect away from it (away set: the app's redirect_uri, or a
// post_logout_redirect_uri), which was not followed.
type landing struct {
	page *htmlPage
	away *url.URL
	// hops are the URLs visited, in order, for failure messages.
	hops []string
	// setCookies are the Set-Cookie headers of every response on the way.
	setCookies []string
}

func (l landing) String() string {
	if l.away != nil {
		return "redirect to " + l.away.String()
	}
	return l.page.String()
}

// htmlPage is a response of the server that is not a redirect.
type htmlPage struct {
	url    *url.URL
	status int
	header http.Header
	body   []byte
	doc    *html.Node // nil when the body is not HTML
}

func (p *htmlPage) String() string {
	return fmt.Sprintf("%s: HTTP %d (%s) %q: %s", p.url, p.status, p.header.Get("Content-Type"), p.title(), p.text())
}

// isHTML reports a text/html page.
func (p *htmlPage) isHTML() bool {
	return strings.HasPrefix(p.header.Get("Content-Type"), "text/html")
}

func (p *htmlPage) title() string {
	if p.doc == nil {
		return ""
	}
	for n := range p.doc.Descendants() {
		if n.Type == html.ElementNode && n.Data == "title" {
			return strings.TrimSpace(textOf(n))
		}
	}
	return ""
}

// text is the page's visible text, whitespace collapsed (or the raw body
// when it is not HTML), for assertions and failure messages.
func (p *htmlPage) text() string {
	if p.doc == nil {
		return strings.TrimSpace(string(p.body))
	}
	for n := range p.doc.Descendants() {
		if n.Type == html.ElementNode && n.Data == "main" {
			return strings.Join(strings.Fields(textOf(n)), " ")
		}
	}
	return strings.Join(strings.Fields(textOf(p.doc)), " ")
}

func textOf(n *html.Node) string {
	var b strings.Builder
	for d := range n.Descendants() {
		if d.Type == html.TextNode {
			b.WriteString(d.Data)
			b.WriteByte(' ')
		}
	}
	return b.String()
}

func attr(n *html.Node, name string) (string, bool) {
	for _, a := range n.Attr {
		if a.Key == name {
			return a.Val, true
		}
	}
	return "", false
}

func hasClass(n *html.Node, class string) bool {
	v, _ := attr(n, "class")
	return slices.Contains(strings.Fields(v), class)
}

// htmlForm is one <form> of a page and its controls in document order.
type htmlForm struct {
	page     *htmlPage
	node     *html.Node
	method   string // GET or POST
	action   *url.URL
	controls []control
}

// control is a form control. For a checkbox, on says whether it is ticked.
type control struct {
	tag, typ, name, value string
	on                    bool
}

// forms returns the page's forms that match: "#id", ".class" or "" (all).
func (p *htmlPage) forms(sel string) []*htmlForm {
	if p.doc == nil {
		return nil
	}
	var out []*htmlForm
	for n := range p.doc.Descendants() {
		if n.Type != html.ElementNode || n.Data != "form" {
			continue
		}
		id, _ := attr(n, "id")
		switch {
		case sel == "":
		case strings.HasPrefix(sel, "#") && id == sel[1:]:
		case strings.HasPrefix(sel, ".") && hasClass(n, sel[1:]):
		default:
			continue
		}
		out = append(out, p.parseForm(n))
	}
	return out
}

// form returns the one form sel matches, or fails the test.
func (p *htmlPage) form(t *testing.T, sel string) *htmlForm {
	t.Helper()
	fs := p.forms(sel)
	if len(fs) != 1 {
		t.Fatalf("want exactly one form %s on the page, found %d; page: %s", sel, len(fs), p)
	}
	return fs[0]
}

func (p *htmlPage) parseForm(n *html.Node) *htmlForm {
	f := &htmlForm{page: p, node: n, method: http.MethodGet}
	if m, _ := attr(n, "method"); strings.EqualFold(m, "post") {
		f.method = http.MethodPost
	}
	action, _ := attr(n, "action")
	a, err := p.url.Parse(action) // "" resolves to the page itself
	if err != nil {
		a = p.url
	}
	f.action = a
	for d := range n.Descendants() {
		if d.Type != html.ElementNode {
			continue
		}
		name, named := attr(d, "name")
		_, disabled := attr(d, "disabled")
		if !named || disabled {
			continue
		}
		value, _ := attr(d, "value")
		switch d.Data {
		case "input":
			typ, _ := attr(d, "type")
			typ = strings.ToLower(typ)
			if typ == "" {
				typ = "text"
			}
			_, checked := attr(d, "checked")
			if (typ == "checkbox" || typ == "radio") && value == "" {
				value = "on"
			}
			f.controls = append(f.controls, control{tag: "input", typ: typ, name: name, value: value, on: checked})
		case "button":
			typ, _ := attr(d, "type")
			if typ == "" {
				typ = "submit"
			}
			f.controls = append(f.controls, control{tag: "button", typ: strings.ToLower(typ), name: name, value: value})
		case "textarea":
			f.controls = append(f.controls, control{tag: "textarea", typ: "textarea", name: name, value: textOf(d)})
		case "select":
			// Not used by these pages; a browser would send the selected option.
		}
	}
	return f
}

// field returns the value of the form's first control named name.
func (f *htmlForm) field(name string) (string, bool) {
	for _, c := range f.controls {
		if c.name == name && c.tag != "button" {
			return c.value, true
		}
	}
	return "", false
}

// checkboxes returns the values of the form's checkboxes named name and
// whether each is ticked.
func (f *htmlForm) checkboxes(name string) map[string]bool {
	out := map[string]bool{}
	for _, c := range f.controls {
		if c.typ == "checkbox" && c.name == name {
			out[c.value] = c.on
		}
	}
	return out
}

// buttons lists the form's submit buttons as name=value.
func (f *htmlForm) buttons() []string {
	var out []string
	for _, c := range f.controls {
		if c.typ == "submit" {
			out = append(out, c.name+"="+c.value)
		}
	}
	return out
}

// fill is what the user does to a form before pressing a button: type
// into text fields (set), tick or untick checkboxes (tick: name ->
// value -> ticked).
type fill struct {
	set  map[string]string
	tick map[string]map[string]bool
}

// data is the form data set a browser submits (HTML "constructing the
// entry list"): every named control in document order, text fields as
// filled, checkboxes only when ticked, and of the buttons only the one
// pressed (button is "name=value"; "" presses none, as Enter would with
// a form without a default button name).
func (f *htmlForm) data(t *testing.T, in fill, button string) url.Values {
	t.Helper()
	v := url.Values{}
	used := map[string]bool{}
	pressed := false
	for _, c := range f.controls {
		switch {
		case c.tag == "button" || c.typ == "submit" || c.typ == "image" || c.typ == "reset":
			if !pressed && button != "" && c.typ == "submit" && c.name+"="+c.value == button {
				v.Add(c.name, c.value)
				pressed = true
			}
		case c.typ == "checkbox" || c.typ == "radio":
			on := c.on
			if m, ok := in.tick[c.name]; ok {
				if want, ok := m[c.value]; ok {
					on = want
				}
			}
			if on {
				v.Add(c.name, c.value)
			}
		default:
			val := c.value
			if s, ok := in.set[c.name]; ok && c.typ != "hidden" {
				val, used[c.name] = s, true
			}
			v.Add(c.name, val)
		}
	}
	if button != "" && !pressed {
		t.Fatalf("form %s has no submit button %s; buttons: %v; page: %s", f.describe(), button, f.buttons(), f.page)
	}
	for k := range in.set {
		if !used[k] {
			t.Fatalf("form %s has no field %q to fill in; page: %s", f.describe(), k, f.page)
		}
	}
	for name, m := range in.tick {
		have := f.checkboxes(name)
		for val := range m {
			if _, ok := have[val]; !ok {
				t.Fatalf("form %s has no checkbox %s=%s; it has %v", f.describe(), name, val, have)
			}
		}
	}
	return v
}

func (f *htmlForm) describe() string {
	id, _ := attr(f.node, "id")
	cl, _ := attr(f.node, "class")
	return fmt.Sprintf("<form id=%q class=%q method=%s action=%s>", id, cl, f.method, f.action)
}

// submit fills in the form, presses button and follows the answer.
func (b *headless) submit(f *htmlForm, in fill, button string) landing {
	b.t.Helper()
	return b.submitData(f, f.data(b.t, in, button))
}

// submitData sends a form's data set as the browser would: a GET form in
// the action's query (replacing it), a POST form as
// application/x-www-form-urlencoded.
func (b *headless) submitData(f *htmlForm, v url.Values) landing {
	b.t.Helper()
	if f.method == http.MethodGet {
		u := *f.action
		u.RawQuery = v.Encode()
		return b.navigate(http.MethodGet, u.String(), nil, f.page.url)
	}
	return b.navigate(http.MethodPost, f.action.String(), v, f.page.url)
}

// get navigates to u (typing it in the address bar).
func (b *headless) get(u string) landing {
	b.t.Helper()
	return b.navigate(http.MethodGet, u, nil, nil)
}

// post sends a form body to u, as a form on another site (the app's
// authorize-post form) would.
func (b *headless) post(u string, form url.Values) landing {
	b.t.Helper()
	return b.navigate(http.MethodPost, u, form, nil)
}

// navigate sends one request and follows the server's redirects (a 303
// or 302 after a POST becomes a GET) while they stay on the server.
func (b *headless) navigate(method, u string, form url.Values, referer *url.URL) landing {
	b.t.Helper()
	var l landing
	for hop := 0; ; hop++ {
		if hop > 20 {
			b.t.Fatalf("more than 20 redirects: %v", l.hops)
		}
		target, err := url.Parse(u)
		if err != nil {
			b.t.Fatalf("navigating to %q: %v", u, err)
		}
		if target.Scheme+"://"+target.Host != b.base.Scheme+"://"+b.base.Host {
			l.away = target
			return l
		}
		l.hops = append(l.hops, method+" "+u)
		var body io.Reader
		if form != nil {
			body = strings.NewReader(form.Encode())
		}
		req, err := http.NewRequest(method, u, body)
		if err != nil {
			b.t.Fatal(err)
		}
		req.Header.Set("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")
		req.Header.Set("User-Agent", "smartgate-e2e-headless/1")
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		if referer != nil {
			req.Header.Set("Referer", referer.String())
			req.Header.Set("Origin", referer.Scheme+"://"+referer.Host)
		}
		resp, err := b.hc.Do(req)
		if err != nil {
			b.t.Fatalf("%s %s: %v", method, u, err)
		}
		l.setCookies = append(l.setCookies, resp.Header.Values("Set-Cookie")...)
		raw, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			b.t.Fatalf("%s %s: reading the body: %v", method, u, err)
		}
		switch resp.StatusCode {
		case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther, http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
			loc, err := target.Parse(resp.Header.Get("Location"))
			if err != nil || resp.Header.Get("Location") == "" {
				b.t.Fatalf("%s %s: %d with a bad Location %q", method, u, resp.StatusCode, resp.Header.Get("Location"))
			}
			if resp.StatusCode == http.StatusFound || resp.StatusCode == http.StatusSeeOther || resp.StatusCode == http.StatusMovedPermanently {
				method, form = http.MethodGet, nil
			}
			referer, u = target, loc.String()
			continue
		}
		p := &htmlPage{url: target, status: resp.StatusCode, header: resp.Header, body: raw}
		if p.isHTML() {
			doc, err := html.Parse(strings.NewReader(string(raw)))
			if err != nil {
				b.t.Fatalf("%s %s: the page is not HTML: %v", method, u, err)
			}
			p.doc = doc
		}
		l.page = p
		return l
	}
}

// person is who sits at the browser and what they choose on the pages.
type person struct {
	username, password string
	// search are the patient picker's search fields (name, birthdate,
	// identifier); pick is the Patient id to choose from the results.
	search url.Values
	pick   string
	// untick are scopes to untick on the consent page; deny presses Deny.
	untick []string
	deny   bool
}

// flow is how an authorization went through the pages.
type flow struct {
	// pages are the pages shown, in order: "login", "select-patient",
	// "consent" (the search results count as part of select-patient).
	pages       []string
	consent     map[string]bool // the consent page's scope checkboxes as shown
	consentText string          // the consent page's text
	callback    *url.URL        // the redirect to the app, not followed
	last        landing
	// setCookies are the Set-Cookie headers of the whole flow.
	setCookies []string
}

func (f flow) query() url.Values {
	if f.callback == nil {
		return nil
	}
	return f.callback.Query()
}

// code returns the authorization response's code, failing the test with
// the error the app received instead.
func (f flow) code(t *testing.T) string {
	t.Helper()
	q := f.query()
	if q.Get("code") == "" {
		t.Fatalf("want a code at the app's redirect_uri; got %s (pages %v)", f.last, f.pages)
	}
	return q.Get("code")
}

// authorize drives the browser from an authorization URL to the app's
// redirect_uri: it signs in on the login page (#login), searches and
// picks a patient on the picker, ticks or unticks on the consent page
// (#consent) and presses Allow or Deny. A page it does not know (an
// error page) fails the test.
func (b *headless) authorize(authURL string, who person) flow {
	b.t.Helper()
	return b.continueFlow(b.get(authURL), who)
}

// authorizePost sends the authorization request as a form POST (SMART
// authorize-post) and goes on like authorize.
func (b *headless) authorizePost(endpoint string, params url.Values, who person) flow {
	b.t.Helper()
	return b.continueFlow(b.post(endpoint, params), who)
}

func (b *headless) continueFlow(l landing, who person) flow {
	b.t.Helper()
	var fl flow
	searched := false
	for step := 0; ; step++ {
		fl.last = l
		fl.setCookies = append(fl.setCookies, l.setCookies...)
		if l.away != nil {
			fl.callback = l.away
			return fl
		}
		if step > 10 {
			b.t.Fatalf("the flow went through more than 10 pages: %v; last %s", fl.pages, l)
		}
		p := l.page
		switch {
		case len(p.forms("#login")) == 1:
			fl.pages = append(fl.pages, "login")
			if who.username == "" {
				b.t.Fatalf("the login page was shown, but this step expected none (pages %v): %s", fl.pages, p)
			}
			if p.status != http.StatusOK {
				b.t.Fatalf("login page: HTTP %d, want 200 (after a wrong password?): %s", p.status, p)
			}
			if slices.Contains(fl.pages[:len(fl.pages)-1], "login") {
				b.t.Fatalf("the login page came back after signing in as %s: %s", who.username, p)
			}
			l = b.submit(p.form(b.t, "#login"), fill{set: map[string]string{"username": who.username, "password": who.password}}, "action=login")
		case len(p.forms("#patient-search")) == 1:
			if !searched {
				fl.pages = append(fl.pages, "select-patient")
				if who.pick == "" {
					b.t.Fatalf("the patient picker was shown, but no patient was to be picked (pages %v): %s", fl.pages, p)
				}
				set := map[string]string{}
				for k := range who.search {
					set[k] = who.search.Get(k)
				}
				searched = true
				l = b.submit(p.form(b.t, "#patient-search"), fill{set: set}, "")
				continue
			}
			var pick *htmlForm
			var offered []string
			for _, f := range p.forms(".pick") {
				for _, btn := range f.buttons() {
					offered = append(offered, btn)
					if btn == "patient="+who.pick {
						pick = f
					}
				}
			}
			if pick == nil {
				b.t.Fatalf("the picker, searched with %v, does not offer Patient %s; it offers %v: %s", who.search, who.pick, offered, p)
			}
			l = b.submit(pick, fill{}, "patient="+who.pick)
		case len(p.forms("#consent")) == 1:
			fl.pages = append(fl.pages, "consent")
			f := p.form(b.t, "#consent")
			fl.consent, fl.consentText = f.checkboxes("scope"), p.text()
			in := fill{tick: map[string]map[string]bool{}}
			if len(who.untick) > 0 {
				in.tick["scope"] = map[string]bool{}
				for _, s := range who.untick {
					in.tick["scope"][s] = false
				}
			}
			button := "decision=approve"
			if who.deny {
				button = "decision=deny"
			}
			l = b.submit(f, in, button)
		default:
			b.t.Fatalf("an unexpected page (after %v; hops %v): %s", fl.pages, l.hops, p)
		}
	}
}

// demoPassword returns a demo user's password from <data-dir>/dev-users.json.
func demoPassword(t *testing.T, dataDir, username string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dataDir, "dev-users.json"))
	if err != nil {
		t.Fatalf("dev-users.json: %v", err)
	}
	var users []struct {
		Username string `json:"username"`
		Password string `json:"password"`
	}
	if err := json.Unmarshal(raw, &users); err != nil {
		t.Fatalf("dev-users.json: %v", err)
	}
	for _, u := range users {
		if u.Username == username {
			return u.Password
		}
	}
	t.Fatalf("dev-users.json has no user %s", username)
	return ""
}
