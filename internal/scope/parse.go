package scope

import (
	"fmt"
	"net/url"
	"strings"
	"unicode/utf8"
)

// MaxLen is the longest single scope Parse accepts, in bytes. Real scopes,
// query constraints included, are far shorter; the limit bounds the work an
// attacker can cause and the size of error descriptions.
const MaxLen = 1024

// tokenByte reports whether c may appear in a scope token: RFC 6749 §3.3,
// scope-token = 1*( %x21 / %x23-5B / %x5D-7E ).
func tokenByte(c byte) bool {
	return c == 0x21 || (c >= 0x23 && c <= 0x5B) || (c >= 0x5D && c <= 0x7E)
}

// Parse parses one scope. It returns a nil *Dropped when s is a valid scope,
// and otherwise a Dropped with ReasonMalformed (s breaks the grammar) or
// ReasonUnknown (s is well formed but names a scope, context or resource
// type this server does not know).
//
// Resource scopes follow SMART App Launch 2.2 §Scopes for requesting FHIR
// resources:
//
//	( patient | user | system ) / ( <FHIR R4 resource type> | * ) . <perms> [ ? <query> ]
//
// where perms is v1 (read, write or *) or v2 (a non-empty subset of c r u d s
// in that order), and the query (v2 only) is name=value pairs joined by '&',
// percent-encoded as in a URL query string.
func Parse(s string) (Scope, *Dropped) {
	if s == "" {
		return malformed(s, "the scope is empty; separate scopes with single spaces")
	}
	if len(s) > MaxLen {
		return malformed(s, fmt.Sprintf("the scope is %d bytes long, more than the limit of %d", len(s), MaxLen))
	}
	for i := 0; i < len(s); i++ {
		if !tokenByte(s[i]) {
			return malformed(s, fmt.Sprintf("byte 0x%02X at offset %d is not allowed: a scope is visible ASCII without double quote or backslash (RFC 6749 §3.3), and scopes are separated by spaces", s[i], i))
		}
	}
	if k := fixedKind(s); k != 0 {
		return Scope{Raw: s, Kind: k}, nil
	}
	ctx, _, ok := strings.Cut(s, "/")
	if !ok {
		return unknown(s, unknownName(s))
	}
	switch ctx {
	case ContextPatient, ContextUser, ContextSystem:
		return parseResource(s)
	case "":
		return malformed(s, "nothing before '/': a resource scope starts with patient/, user/ or system/")
	case "launch":
		return unknown(s, "the launch context scopes are launch, launch/patient and launch/encounter")
	}
	for _, c := range [...]string{ContextPatient, ContextUser, ContextSystem} {
		if strings.EqualFold(ctx, c) {
			return unknown(s, fmt.Sprintf("context '%s' must be written in lower case: %s/", ctx, c))
		}
	}
	if hint := suggestFixed(s); hint != "" {
		return unknown(s, hint)
	}
	return unknown(s, fmt.Sprintf("context '%s' is not one of patient, user or system (SMART App Launch 2.2 resource scopes)", ctx))
}

// unknownName explains an unknown scope without a valid context.
func unknownName(s string) string {
	if hint := suggestFixed(s); hint != "" {
		return hint
	}
	return "not a scope this server knows: use a SMART App Launch 2.2 scope such as openid, fhirUser, launch/patient, offline_access or patient/Observation.rs"
}

// suggestFixed names the fixed scope s most likely meant, or returns "".
func suggestFixed(s string) string {
	for _, f := range fixedScopes {
		if strings.EqualFold(s, f.name) {
			return fmt.Sprintf("scopes are case-sensitive: did you mean '%s'?", f.name)
		}
	}
	if len(s) <= 40 {
		for _, f := range fixedScopes {
			if editDistance(s, f.name, 3) < 3 {
				return fmt.Sprintf("did you mean '%s'?", f.name)
			}
		}
	}
	return ""
}

// parseResource parses s, which starts with a valid context and '/'.
func parseResource(s string) (Scope, *Dropped) {
	head, query, hasQuery := strings.Cut(s, "?")
	ctx, rest, _ := strings.Cut(head, "/")
	typ, perm, ok := strings.Cut(rest, ".")
	if !ok {
		return malformed(s, fmt.Sprintf("a resource scope needs '.' and permissions after the resource type, as in %s/Observation.rs", ctx))
	}
	if typ == "" {
		return malformed(s, fmt.Sprintf("the resource type is missing between '/' and '.': use a FHIR resource type or *, as in %s/Observation.rs", ctx))
	}
	if typ != "*" && !isLetters(typ) {
		return malformed(s, fmt.Sprintf("resource type '%s' is not a name: use a FHIR R4 resource type such as Observation, or *", typ))
	}
	perms, version, problem := parsePerms(perm)
	if problem != "" {
		return malformed(s, problem)
	}
	sc := Scope{Raw: s, Kind: KindResource, Context: ctx, Resource: typ, Perms: perms, Version: version}
	if hasQuery {
		if version == 1 {
			return malformed(s, fmt.Sprintf("query constraints need v2 permission letters: write %s/%s.%s?%s", ctx, typ, perms, query))
		}
		q, problem := parseQuery(query)
		if problem != "" {
			return malformed(s, problem)
		}
		sc.Query = q
	}
	if typ != "*" && !IsResourceType(typ) {
		d := fmt.Sprintf("'%s' is not a FHIR R4 (%s) resource type", typ, fhirVersion)
		if t := suggestType(typ); t != "" {
			d += fmt.Sprintf(": did you mean '%s'?", t)
		} else {
			d += "; resource types are case-sensitive, as in Observation"
		}
		return unknown(s, d)
	}
	return sc, nil
}

func isLetters(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'A' || c > 'Z') && (c < 'a' || c > 'z') {
			return false
		}
	}
	return true
}

// parsePerms reads the suffix after '.': a v1 word or v2 letters. It returns
// a description of the problem when the suffix is invalid.
func parsePerms(p string) (perms Perms, version int, problem string) {
	switch p {
	case "read":
		return PermsRead, 1, ""
	case "write":
		return PermsWrite, 1, ""
	case "*":
		return PermsAll, 1, ""
	case "":
		return 0, 0, "no permissions after '.': use v2 letters from c r u d s (such as .rs) or v1 read, write or *"
	}
	switch {
	case strings.EqualFold(p, "read"):
		return 0, 0, "permissions are case-sensitive: write .read (or the v2 letters .rs)"
	case strings.EqualFold(p, "write"):
		return 0, 0, "permissions are case-sensitive: write .write (or the v2 letters .cud)"
	}
	var set Perms
	for i := 0; i < len(p); i++ {
		at := strings.IndexByte(permLetters, p[i])
		if at < 0 {
			return 0, 0, fmt.Sprintf("'%c' is not a permission: v2 permissions are letters from c r u d s, v1 permissions are read, write or *", p[i])
		}
		set |= 1 << at
	}
	if set.String() != p {
		return 0, 0, fmt.Sprintf("permission letters must appear in the order c r u d s, each at most once: write .%s instead of .%s", set, p)
	}
	return set, 2, ""
}

// parseQuery parses the v2 query constraints after '?'.
func parseQuery(query string) (url.Values, string) {
	if query == "" {
		return nil, "nothing after '?': add name=value search parameters (such as ?category=laboratory) or drop the '?'"
	}
	q := url.Values{}
	for part := range strings.SplitSeq(query, "&") {
		if part == "" {
			return nil, "the query has an empty parameter: join name=value pairs with single '&'"
		}
		rawName, rawValue, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Sprintf("query parameter '%s' has no value: write name=value", part)
		}
		if rawName == "" || rawValue == "" {
			return nil, fmt.Sprintf("query parameter '%s' needs both a name and a value: write name=value", part)
		}
		name, err1 := url.QueryUnescape(rawName)
		value, err2 := url.QueryUnescape(rawValue)
		if err1 != nil || err2 != nil {
			return nil, fmt.Sprintf("query parameter '%s' is not valid percent-encoding: write %%XX with two hex digits, or %%25 for a literal percent sign", part)
		}
		if !cleanText(name) || !cleanText(value) {
			return nil, fmt.Sprintf("query parameter '%s' decodes to invalid UTF-8 or a control character", part)
		}
		q[name] = append(q[name], value)
	}
	return q, ""
}

// cleanText reports whether s is valid UTF-8 without control characters.
func cleanText(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || (r >= 0x7F && r < 0xA0) {
			return false
		}
	}
	return true
}

func malformed(s, detail string) (Scope, *Dropped) {
	return Scope{}, &Dropped{Scope: s, Reason: ReasonMalformed, Detail: detail}
}

func unknown(s, detail string) (Scope, *Dropped) {
	return Scope{}, &Dropped{Scope: s, Reason: ReasonUnknown, Detail: detail}
}

// ParseList parses a space-separated scope list, the form of the OAuth scope
// parameter (RFC 6749 §3.3). It returns the valid scopes and the dropped
// ones, each in the order of first appearance.
//
// Scopes are separated by SP (0x20). Leading, trailing and repeated spaces
// are tolerated and produce no empty scopes; tabs, newlines and other
// characters outside the scope-token set make the token that holds them
// malformed. A scope written identically more than once is kept (or dropped)
// once; differently written scopes with the same meaning are all kept, so
// each is echoed back in the requested form.
func ParseList(list string) ([]Scope, []Dropped) {
	var (
		scopes  []Scope
		dropped []Dropped
		seen    map[string]bool // created only for long lists
		n       int
	)
	for tok := range strings.SplitSeq(list, " ") {
		if tok == "" {
			continue
		}
		if seenBefore(tok, scopes, dropped, &seen, n) {
			continue
		}
		n++
		if s, d := Parse(tok); d != nil {
			dropped = append(dropped, *d)
		} else {
			if scopes == nil {
				scopes = make([]Scope, 0, strings.Count(list, " ")+1)
			}
			scopes = append(scopes, s)
		}
	}
	return scopes, dropped
}

// seenBefore reports whether tok was already parsed. Short lists (the usual
// case) are scanned; from 16 tokens on, a set keeps the cost linear.
func seenBefore(tok string, scopes []Scope, dropped []Dropped, seen *map[string]bool, n int) bool {
	const scanLimit = 16
	if n < scanLimit {
		for _, s := range scopes {
			if s.Raw == tok {
				return true
			}
		}
		for _, d := range dropped {
			if d.Scope == tok {
				return true
			}
		}
		return false
	}
	if *seen == nil {
		*seen = make(map[string]bool, 2*n)
		for _, s := range scopes {
			(*seen)[s.Raw] = true
		}
		for _, d := range dropped {
			(*seen)[d.Scope] = true
		}
	}
	if (*seen)[tok] {
		return true
	}
	(*seen)[tok] = true
	return false
}
