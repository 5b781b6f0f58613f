package scope

import (
	"fmt"
	"strings"
	"testing"
)

// errorDescriptionOK reports whether s fits RFC 6749 §5.2's error_description
// character set.
func errorDescriptionOK(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == 0x20 || c == 0x21 || (c >= 0x23 && c <= 0x5B) || (c >= 0x5D && c <= 0x7E)) {
			return false
		}
	}
	return true
}

func TestDescribe(t *testing.T) {
	_, parsed := ParseList("patient/Observaton.read patient/Observation.sr foo\tbar Patient/Observation.read")
	_, narrowed := Narrow(mustParseAll(t, "user/*.rs offline_access"), mustParseAll(t, "offline_access"),
		func(Scope) (bool, string) { return false, "the user did not allow offline access." })
	ds := append(parsed, narrowed...)
	got := Describe(ds)
	for _, d := range ds {
		scope := strings.ReplaceAll(d.Scope, "\t", "%09")
		if want := "'" + scope + "' is " + string(d.Reason); !strings.Contains(got, want) {
			t.Errorf("Describe: got %q, want it to contain %q", got, want)
		}
	}
	for _, want := range []string{"did you mean 'Observation'", "write .rs instead of .sr", "0x09", "lower case", "did not allow offline access)", "section 3.3"} {
		if !strings.Contains(got, want) {
			t.Errorf("Describe: got %q, want it to contain %q", got, want)
		}
	}
	if !strings.HasPrefix(got, "Scopes dropped: ") || !strings.HasSuffix(got, ".") || strings.Count(got, ". ") > 0 {
		t.Errorf("Describe: got %q, want one sentence starting with 'Scopes dropped: '", got)
	}
	if !errorDescriptionOK(got) {
		t.Errorf("Describe: got %q, want only RFC 6749 error_description characters", got)
	}
}

func TestDescribeEdges(t *testing.T) {
	if got := Describe(nil); got != "" {
		t.Errorf("Describe(nil): got %q, want empty", got)
	}
	one := Describe([]Dropped{{Scope: "foo", Reason: ReasonUnknown}})
	if want := "Scope dropped: 'foo' is unknown."; one != want {
		t.Errorf("Describe(one, no detail): got %q, want %q", one, want)
	}
	long := strings.Repeat("a", 500)
	got := Describe([]Dropped{{Scope: long, Reason: ReasonMalformed, Detail: "x"}})
	if strings.Contains(got, long[:100]) || !strings.Contains(got, long[:77]+"...") {
		t.Errorf("Describe(500-byte scope): got %q, want the scope cut at 80 bytes", got)
	}
	quoted := Describe([]Dropped{{Scope: "a\"b\\c\u00e9", Reason: ReasonMalformed, Detail: "say \"no\""}})
	if !errorDescriptionOK(quoted) || !strings.Contains(quoted, "a%22b%5Cc%C3%A9") {
		t.Errorf("Describe(quote, backslash, non-ASCII): got %q, want them percent-encoded", quoted)
	}
	var many []Dropped
	for i := range 25 {
		many = append(many, Dropped{Scope: fmt.Sprintf("s%d", i), Reason: ReasonUnknown})
	}
	got = Describe(many)
	if !strings.Contains(got, "'s19' is unknown") || strings.Contains(got, "'s20'") || !strings.HasSuffix(got, "; and 5 more.") {
		t.Errorf("Describe(25 scopes): got %q, want 20 listed and 'and 5 more'", got)
	}
}

func TestDroppedInvalid(t *testing.T) {
	for r, want := range map[Reason]bool{ReasonUnknown: true, ReasonMalformed: true, ReasonNotRegistered: false, ReasonNotAllowed: false} {
		if got := (Dropped{Reason: r}).Invalid(); got != want {
			t.Errorf("Dropped{Reason: %q}.Invalid(): got %v, want %v", r, got, want)
		}
	}
}
