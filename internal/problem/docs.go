package problem

import (
	"fmt"
	"io"
	"strings"

	"smartgate/web"
)

var errorsPage = web.Templates("errors.html")

// WriteReferencePage renders the /docs/errors page.
func WriteReferencePage(w io.Writer) error {
	return errorsPage.ExecuteTemplate(w, "layout", entries)
}

// Markdown renders the catalogue as docs/errors.md (kept in sync by a test).
func Markdown() string {
	var b strings.Builder
	b.WriteString("# Error reference\n\n")
	b.WriteString("<!-- Generated from internal/problem/catalogue.go by `go test ./internal/problem -update`. Do not edit. -->\n\n")
	b.WriteString("Every error smartgate returns carries one of these ids: in `error_uri` (OAuth JSON errors),\n")
	b.WriteString("in the OperationOutcome's `details.coding` (FHIR), or on the error page (browser), together with\n")
	b.WriteString("a request id (`request_id`, the `X-Request-Id` header) that finds the matching server log line.\n")
	b.WriteString("The running server serves the same list at `/docs/errors`.\n\n")
	b.WriteString("| id | HTTP | code | title |\n|---|---|---|---|\n")
	for _, e := range entries {
		status := "CLI"
		if e.Status != 0 {
			status = fmt.Sprint(e.Status)
		}
		fmt.Fprintf(&b, "| [`%s`](#%s) | %s | `%s` | %s |\n", e.ID, e.ID, status, e.Code, e.Title)
	}
	for _, e := range entries {
		fmt.Fprintf(&b, "\n## %s\n\n**%s.** ", e.ID, e.Title)
		if e.Status != 0 {
			fmt.Fprintf(&b, "HTTP %d, error code `%s`", e.Status, e.Code)
			if e.FHIRCode != "" {
				fmt.Fprintf(&b, ", FHIR issue code `%s`", e.FHIRCode)
			}
			b.WriteString(".\n\n")
		} else {
			b.WriteString("Reported by the command line and at startup.\n\n")
		}
		fmt.Fprintf(&b, "*Cause.* %s\n\n*Fix.* %s\n", e.Cause, e.Fix)
	}
	return b.String()
}
