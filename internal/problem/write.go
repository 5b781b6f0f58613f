package problem

import (
	"context"
	"encoding/json"
	"html/template"
	"log/slog"
	"net/http"
	"strings"

	"smartgate/internal/requestid"
	"smartgate/web"
)

// Surface is the kind of client an endpoint answers, which decides how an
// error is rendered.
type Surface int

const (
	// SurfaceOAuth renders RFC 6749 §5.2 JSON: error, error_description, error_uri.
	SurfaceOAuth Surface = iota
	// SurfaceFHIR renders a FHIR R4 OperationOutcome.
	SurfaceFHIR
	// SurfaceHTML renders a readable page for people in a browser.
	SurfaceHTML
)

// Writer renders errors for one server. It logs every error it writes once,
// with the private cause, and sends the client only the public parts.
type Writer struct {
	BaseURL string // the issuer; error_uri is BaseURL + "/docs/errors#" + id
	Log     *slog.Logger
}

var errorPage = web.Templates("error.html")

// DocURL is the public documentation link of id.
func (wr *Writer) DocURL(id ID) string {
	return strings.TrimRight(wr.BaseURL, "/") + "/docs/errors#" + string(id)
}

// Write renders err on surface s and logs it once.
func (wr *Writer) Write(w http.ResponseWriter, r *http.Request, s Surface, err error) {
	pe := From(err)
	status := pe.HTTPStatus()
	rid := requestid.From(r.Context())
	wr.log(r.Context(), r, pe, status)

	h := w.Header()
	for k, vs := range pe.Header {
		for _, v := range vs {
			h.Add(k, v)
		}
	}
	h.Set("Cache-Control", "no-store")
	switch s {
	case SurfaceFHIR:
		h.Set("Content-Type", "application/fhir+json; charset=utf-8")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(wr.OperationOutcome(pe, rid))
	case SurfaceHTML:
		h.Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(status)
		e := pe.Entry()
		_ = errorPage.ExecuteTemplate(w, "layout", map[string]any{
			"Title": e.Title, "Description": pe.Description, "Hint": pe.Hint,
			"Code": string(pe.ID), "DocURL": template.URL(wr.DocURL(pe.ID)), "RequestID": rid,
		})
	default:
		h.Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(status)
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(wr.OAuthBody(pe, rid))
	}
}

// OAuthBody is the RFC 6749 §5.2 error object, plus the request id.
func (wr *Writer) OAuthBody(pe *Error, rid string) map[string]string {
	desc := pe.Description
	if pe.Hint != "" {
		desc += " " + pe.Hint
	}
	body := map[string]string{
		"error":             pe.Entry().Code,
		"error_description": oauthSafe(desc),
		"error_uri":         wr.DocURL(pe.ID),
	}
	if rid != "" {
		body["request_id"] = rid
	}
	return body
}

// OperationOutcome is the FHIR R4 OperationOutcome for pe.
func (wr *Writer) OperationOutcome(pe *Error, rid string) map[string]any {
	diag := "See " + wr.DocURL(pe.ID)
	if pe.Hint != "" {
		diag = pe.Hint + " " + diag
	}
	if rid != "" {
		diag += " (request id " + rid + ")"
	}
	code := pe.Entry().FHIRCode
	if code == "" {
		code = "processing"
	}
	issues := []map[string]any{{
		"severity": "error",
		"code":     code,
		"details": map[string]any{
			"coding": []map[string]string{{"system": wr.BaseURL + "/docs/errors", "code": string(pe.ID)}},
			"text":   pe.Description,
		},
		"diagnostics": diag,
	}}
	for _, is := range pe.Issues {
		m := map[string]any{"severity": is.Severity, "code": is.Code, "diagnostics": is.Diagnostics}
		if is.Expression != "" {
			m["expression"] = []string{is.Expression}
		}
		issues = append(issues, m)
	}
	return map[string]any{"resourceType": "OperationOutcome", "issue": issues}
}

func (wr *Writer) log(ctx context.Context, r *http.Request, pe *Error, status int) {
	if wr.Log == nil {
		return
	}
	level := slog.LevelInfo
	if status >= 500 {
		level = slog.LevelError
	}
	attrs := []slog.Attr{
		slog.String("request_id", requestid.From(ctx)),
		slog.String("error_id", string(pe.ID)),
		slog.Int("status", status),
		slog.String("method", r.Method),
		slog.String("path", r.URL.Path),
		slog.String("description", pe.Description),
	}
	if pe.Cause != nil {
		attrs = append(attrs, slog.String("cause", pe.Cause.Error()))
	}
	wr.Log.LogAttrs(ctx, level, "request refused", attrs...)
}

// oauthSafe keeps error_description within the characters RFC 6749 §5.2
// allows (%x20-21 / %x23-5B / %x5D-7E): no quote, no backslash, no non-ASCII.
func oauthSafe(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteByte('\'')
		case r == '\\':
			b.WriteByte('/')
		case r >= 0x20 && r <= 0x7e:
			b.WriteRune(r)
		case r == '§':
			b.WriteString("section ")
		case r == '\n' || r == '\t':
			b.WriteByte(' ')
		default:
			b.WriteByte('?')
		}
	}
	return b.String()
}

// LogOnly logs err as Write would, for an error the caller reports another
// way (an authorization error sent back to the app in a redirect).
func (wr *Writer) LogOnly(r *http.Request, err error) {
	pe := From(err)
	wr.log(r.Context(), r, pe, pe.HTTPStatus())
}
