package index

import (
	"testing"
	"unicode/utf8"
)

func TestNormalize(t *testing.T) {
	tests := []struct{ in, want string }{
		{"Amy", "amy"},
		{"already normal", "already normal"},
		{"  Amy   Renée\tBaxter \n", "amy renee baxter"},
		{"SHAW", "shaw"},
		{"ÀÉÎÕÜ", "aeiou"},
		{"Zoë Ångström", "zoe angstrom"},
		{"e\u0301cole", "ecole"}, // a decomposed accent
		{"Łódź", "lodz"},
		{"Søren Ødegård", "soren odegard"},
		{"İstanbul", "istanbul"},
		{"straße", "straße"}, // no accent to strip
		{"Ελλάδα", "ελλαδα"},
		{"Nguyễn Văn", "nguyen van"},
		{"non\u00a0breaking\u2003space", "non breaking space"},
		{"O'Brien-Smith", "o'brien-smith"},
		{"", ""},
		{" \t\n ", ""},
		{"a\r\nb", "a b"},
	}
	for _, tt := range tests {
		if got := Normalize(tt.in); got != tt.want {
			t.Errorf("Normalize(%q): got %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestNormalizeAllocs(t *testing.T) {
	s := "already normal text"
	if n := testing.AllocsPerRun(100, func() { Normalize(s) }); n != 0 {
		t.Errorf("Normalize(%q): %v allocations, want none for a normal ASCII string", s, n)
	}
}

func FuzzNormalize(f *testing.F) {
	for _, s := range []string{"Amy  Renée", "Łódź", "İ", "ÀÉÎ", "a\u0301\u0302b", " x "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			return
		}
		n := Normalize(s)
		if again := Normalize(n); again != n {
			t.Errorf("Normalize(%q) = %q, but Normalize of that is %q", s, n, again)
		}
	})
}
