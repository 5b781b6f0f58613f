package index

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Normalize prepares a string for FHIR string search (R4 §3.1.1.4.9:
// "case-insensitive and accent-insensitive"): it lower-cases s, removes
// diacritics (the combining marks of its canonical decomposition, so "é"
// becomes "e"; and ł, ø, đ, ħ, ı, which Unicode does not decompose, become
// l, o, d, h, i), collapses every run of white space to one space and trims
// the ends. The indexer stores it in StringIndex.Norm and TokenIndex.Text;
// the query side applies it to the search value.
func Normalize(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return normalizeUnicode(s)
		}
	}
	return normalizeASCII(s)
}

// normalizeASCII is the allocation-free common case: it returns s itself
// when s is already normal.
func normalizeASCII(s string) string {
	clean := true
	for i := 0; i < len(s) && clean; i++ {
		c := s[i]
		switch {
		case 'A' <= c && c <= 'Z', c == '\t', c == '\n', c == '\v', c == '\f', c == '\r':
			clean = false
		case c == ' ':
			clean = i > 0 && i < len(s)-1 && s[i+1] != ' '
		}
	}
	if clean {
		return s
	}
	b := make([]byte, 0, len(s))
	space := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || '\t' <= c && c <= '\r':
			space = len(b) > 0
			continue
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		}
		if space {
			b = append(b, ' ')
			space = false
		}
		b = append(b, c)
	}
	return string(b)
}

func normalizeUnicode(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	space := false
	for _, r := range norm.NFD.String(strings.ToLower(s)) {
		switch {
		case unicode.Is(unicode.Mn, r):
			continue
		case unicode.IsSpace(r):
			space = b.Len() > 0
			continue
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		if m, ok := undecomposable[r]; ok {
			r = m
		}
		b.WriteRune(r)
	}
	return norm.NFC.String(b.String())
}

// undecomposable are the Latin letters with a stroke or without a dot that
// carry no combining mark to strip.
var undecomposable = map[rune]rune{'ł': 'l', 'ø': 'o', 'đ': 'd', 'ħ': 'h', 'ı': 'i'}
