package scope

import (
	"fmt"
	"strings"
)

// Reason says why a requested scope was not granted.
type Reason string

// The reasons a scope is dropped. Only ReasonUnknown and ReasonMalformed make
// a request fail with invalid_scope; the other two narrow the grant silently
// unless nothing is left (DESIGN.md, Tokens and grants).
const (
	ReasonUnknown       Reason = "unknown"
	ReasonMalformed     Reason = "malformed"
	ReasonNotRegistered Reason = "not registered for this client"
	ReasonNotAllowed    Reason = "not allowed for this grant"
)

// Dropped is a requested scope that was not granted.
type Dropped struct {
	Scope  string // exactly as requested
	Reason Reason
	Detail string // the rule it breaks and how to fix it, for the client developer
}

// Invalid reports whether d makes a request fail with invalid_scope: the
// scope is unknown or malformed (RFC 6749 §5.2).
func (d Dropped) Invalid() bool {
	return d.Reason == ReasonUnknown || d.Reason == ReasonMalformed
}

// Limits that keep an error description readable whatever the input.
const (
	describeMaxScopes   = 20 // entries listed before "and N more"
	describeMaxScopeLen = 80 // bytes of a scope shown before "..."
)

// Describe returns one sentence that lists each dropped scope and why, for
// the error_description of an invalid_scope error (RFC 6749 §5.2), e.g.
//
//	Scope dropped: 'patient/Observaton.read' is unknown ('Observaton' is not a FHIR R4 (4.0.1) resource type: did you mean 'Observation'?).
//
// The result only holds characters RFC 6749 allows in error_description
// (%x20-21 / %x23-5B / %x5D-7E): any other byte of a scope or detail is shown
// percent-encoded. Long scopes are shortened and long lists end with the
// number of scopes left out. Describe returns "" when ds is empty.
func Describe(ds []Dropped) string {
	if len(ds) == 0 {
		return ""
	}
	var b strings.Builder
	if len(ds) == 1 {
		b.WriteString("Scope dropped: ")
	} else {
		b.WriteString("Scopes dropped: ")
	}
	for i, d := range ds {
		if i == describeMaxScopes {
			fmt.Fprintf(&b, "; and %d more", len(ds)-i)
			break
		}
		if i > 0 {
			b.WriteString("; ")
		}
		sc := d.Scope
		if len(sc) > describeMaxScopeLen {
			sc = sc[:describeMaxScopeLen-3] + "..."
		}
		b.WriteByte('\'')
		writeDescription(&b, sc)
		b.WriteString("' is ")
		writeDescription(&b, string(d.Reason))
		if d.Detail != "" {
			b.WriteString(" (")
			writeDescription(&b, strings.TrimSuffix(d.Detail, "."))
			b.WriteByte(')')
		}
	}
	b.WriteByte('.')
	return b.String()
}

// writeDescription writes s, percent-encoding bytes outside the
// error_description character set (RFC 6749 §5.2). "§" and other non-ASCII
// text in details is written as its ASCII stand-in instead.
func writeDescription(b *strings.Builder, s string) {
	const hex = "0123456789ABCDEF"
	s = strings.ReplaceAll(s, "§", "section ")
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == 0x20 || c == 0x21 || (c >= 0x23 && c <= 0x5B) || (c >= 0x5D && c <= 0x7E) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
}
