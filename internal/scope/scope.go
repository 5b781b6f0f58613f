// Package scope parses, compares and applies SMART on FHIR scopes as defined
// by SMART App Launch 2.2, "Scopes and Launch Context"
// (https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html),
// on the scope syntax of RFC 6749 §3.3.
//
// The package does three jobs:
//
//   - grammar (Parse, ParseList): resource scopes in SMART v1 form
//     (patient/Observation.read) and v2 form (patient/Observation.rs,
//     optionally constrained by search parameters after '?'), and the fixed
//     non-resource scopes (openid, fhirUser, launch/patient, ...);
//   - order (Covers) and negotiation (Narrow): the authorization server
//     grants requested ∩ registered ∩ allowed and echoes each granted scope
//     in the form the client asked for;
//   - enforcement input (Allows): what a set of granted scopes lets one FHIR
//     interaction do, and which scope would allow it when they do not.
//
// Choices made where the specification leaves room (each is tested):
//
//   - A context word other than patient, user or system (practitioner/...,
//     Patient/...) makes the scope ReasonUnknown, not malformed: the shape is
//     a resource scope, the name is one the server does not know. Grammar
//     errors after a valid context (missing '.', bad letters, bad query) are
//     ReasonMalformed and take precedence over an unknown resource type.
//   - ParseList splits on SP only. Runs of spaces and leading or trailing
//     spaces are tolerated (clients build the string by hand more often than
//     not); any other whitespace or control character is part of a token and
//     makes it malformed.
//   - Duplicates collapse only when written identically. Equivalent spellings
//     (patient/Observation.read and patient/Observation.rs) are both kept,
//     because clients compare the returned scope string textually with what
//     they asked for.
//   - Query constraints are compared as opaque decoded strings: a scope with
//     ?category=a,b (a FHIR OR) does not cover one with ?category=a. This can
//     only refuse, never over-grant. A repeated parameter is an AND, so more
//     values mean a narrower scope.
//   - Query names and values must be non-empty, valid percent-encoding (with
//     '+' meaning space, as in any query string), valid UTF-8 once decoded,
//     and free of control characters.
//   - A single scope is at most MaxLen bytes.
//   - Allows reports, beside the summary fields, each allowing scope's
//     context paired with its constraint (Decision.Matches), and sets Needed
//     also when only constrained scopes allow the interaction, so the FHIR
//     layer can name a scope when a constraint check fails.
package scope

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
)

// Perms is a set of SMART v2 permissions: create, read, update, delete,
// search.
type Perms uint8

// The five SMART v2 permissions, in the order the v2 suffix lists them.
const (
	PermC Perms = 1 << iota // create
	PermR                   // read (read and vread, history of an instance)
	PermU                   // update (and patch)
	PermD                   // delete
	PermS                   // search (and history of a type)
)

// The SMART v1 permission words in v2 terms (SMART 2.2, "Scopes for
// requesting FHIR resources": read = rs, write = cud, * = cruds).
const (
	PermsRead  = PermR | PermS
	PermsWrite = PermC | PermU | PermD
	PermsAll   = PermC | PermR | PermU | PermD | PermS
)

const permLetters = "cruds"

// String returns the v2 letters of p in cruds order, e.g. "rs".
func (p Perms) String() string {
	var b [len(permLetters)]byte
	n := 0
	for i := range len(permLetters) {
		if p&(1<<i) != 0 {
			b[n] = permLetters[i]
			n++
		}
	}
	return string(b[:n])
}

// Has reports whether p includes every permission in q.
func (p Perms) Has(q Perms) bool { return p&q == q }

// single reports whether p is exactly one of the five permissions.
func (p Perms) single() bool { return p != 0 && p&(p-1) == 0 && p <= PermS }

// Kind says which scope a Scope is: a resource scope or one of the fixed
// non-resource scopes.
type Kind int

// The zero Kind is no scope at all; Parse never returns it.
const (
	KindResource        Kind = iota + 1 // patient/, user/ or system/ scope
	KindOpenID                          // openid
	KindFHIRUser                        // fhirUser
	KindProfile                         // profile
	KindLaunch                          // launch
	KindLaunchPatient                   // launch/patient
	KindLaunchEncounter                 // launch/encounter
	KindOfflineAccess                   // offline_access
	KindOnlineAccess                    // online_access
	KindAdmin                           // smartgate:admin (DESIGN.md, Tokens and grants)
)

// fixedScopes lists the non-resource scopes, exactly as they are written.
var fixedScopes = [...]struct {
	name string
	kind Kind
}{
	{"openid", KindOpenID},
	{"fhirUser", KindFHIRUser},
	{"profile", KindProfile},
	{"launch", KindLaunch},
	{"launch/patient", KindLaunchPatient},
	{"launch/encounter", KindLaunchEncounter},
	{"offline_access", KindOfflineAccess},
	{"online_access", KindOnlineAccess},
	{"smartgate:admin", KindAdmin},
}

// fixedKind returns the kind of a non-resource scope, or 0.
func fixedKind(s string) Kind {
	switch s {
	case "openid":
		return KindOpenID
	case "fhirUser":
		return KindFHIRUser
	case "profile":
		return KindProfile
	case "launch":
		return KindLaunch
	case "launch/patient":
		return KindLaunchPatient
	case "launch/encounter":
		return KindLaunchEncounter
	case "offline_access":
		return KindOfflineAccess
	case "online_access":
		return KindOnlineAccess
	case "smartgate:admin":
		return KindAdmin
	}
	return 0
}

// String returns "resource" for KindResource and the scope itself for the
// fixed kinds.
func (k Kind) String() string {
	if k == KindResource {
		return "resource"
	}
	for _, f := range fixedScopes {
		if f.kind == k {
			return f.name
		}
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// The three resource-scope contexts (SMART 2.2: patient-specific, user-level
// and system-level scopes).
const (
	ContextPatient = "patient"
	ContextUser    = "user"
	ContextSystem  = "system"
)

// Scope is one parsed scope.
type Scope struct {
	Raw      string     // exactly as requested (echoed back in that form)
	Kind     Kind       // KindResource or one of the fixed scopes
	Context  string     // "patient", "user" or "system" (resource scopes only)
	Resource string     // a FHIR R4 resource type or "*"
	Perms    Perms      // by meaning: v1 read is PermsRead, and so on
	Version  int        // 1 (read/write/*) or 2 (cruds letters); 0 for non-resource scopes
	Query    url.Values // v2 query constraints (nil when unconstrained)
}

// String returns the scope as it was requested.
func (s Scope) String() string { return s.Raw }

// IsResource reports whether s is a patient/, user/ or system/ scope.
func (s Scope) IsResource() bool { return s.Kind == KindResource }

// Constrained reports whether s carries v2 query constraints.
func (s Scope) Constrained() bool { return len(s.Query) > 0 }

// Canonical returns the scope in v2 form with its query parameters sorted
// (patient/Observation.read becomes patient/Observation.rs). Two scopes with
// the same meaning have the same canonical form, and Parse accepts it.
func (s Scope) Canonical() string {
	if s.Kind != KindResource {
		return s.Raw
	}
	c := s.Context + "/" + s.Resource + "." + s.Perms.String()
	if len(s.Query) > 0 {
		c += "?" + encodeQuery(s.Query)
	}
	return c
}

// Join returns the scopes' requested forms separated by single spaces, the
// form of the scope parameter and claim (RFC 6749 §3.3).
func Join(ss []Scope) string {
	n := 0
	for _, s := range ss {
		n += len(s.Raw) + 1
	}
	var b strings.Builder
	b.Grow(n)
	for i, s := range ss {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(s.Raw)
	}
	return b.String()
}

// encodeQuery writes q as name=value pairs sorted by name, then value,
// escaping only what a scope token or the query syntax cannot hold.
func encodeQuery(q url.Values) string {
	names := make([]string, 0, len(q))
	for k := range q {
		names = append(names, k)
	}
	slices.Sort(names)
	var b strings.Builder
	for _, k := range names {
		vs := slices.Clone(q[k])
		slices.Sort(vs)
		for _, v := range vs {
			if b.Len() > 0 {
				b.WriteByte('&')
			}
			escapeTo(&b, k)
			b.WriteByte('=')
			escapeTo(&b, v)
		}
	}
	return b.String()
}

func escapeTo(b *strings.Builder, s string) {
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		c := s[i]
		if tokenByte(c) && !strings.ContainsRune("%&+=#", rune(c)) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
}
