package route

import (
	"regexp"
	"testing"
)

// simplePatterns are expressions compileSimple takes (simple: true) or
// leaves to package regexp.
var simplePatterns = []struct {
	expr   string
	simple bool
}{
	{"v[0-9]+", true},
	{"ios-.*", true},
	{".*-canary", true},
	{"v[0-9]+-r19", true},
	{"[a-z]+-[0-9]{2,4}", true},
	{"^abc$", true},
	{"a?b", true},
	{"x{3}y*", true},
	{"[^/]+/[0-9]+", true},
	{"(?s).+x", true},
	{"é+ü", true},
	{"[α-ω]+[0-9]", true},
	{"(v)[0-9]+", true},
	{"", true},
	{"a*a", true}, // a* takes what the final a leaves
	{"[0-9]*[0-9]", false},
	{"a*b?c", false}, // b? may take nothing
	{".*-.*", false}, // two variable elements, the first not followed by a disjoint one
	{"[0-9]+[a-z]?", false},
	{"[0-9]+x[a-z]?", true},
	{"a.*b.*c", false},
	{"ab|cd", false},   // alternation
	{"(?i)abc", false}, // case folding
	{"(ab)+", false},   // repetition of more than a character
	{"a\\bb", false},   // word boundary
	{"a^b", false},
	{"\ufffd+", true},
	{"\ufffd", false},
	{`\Qa.b`, true},
	{`a\Q)$`, true},
}

var simpleInputs = []string{
	"", "v", "v1", "v12", "v12x", "xv1", "ios-", "ios-17", "android-1", "-canary", "a-canary", "a-canaryx",
	"v2-r19", "v23-r19", "v-r19", "abc-12", "abc-12345", "abc-1234", "ab", "b", "xxx", "xxxyy", "xxyy",
	"a/1", "/1", "a/", "a\nx", "\nx", "x", "ééü", "ü", "αβ7", "αβ", "abc", "abcd", "a\xffb", "\xff", "\xe2\x82",
	"\xff\xfe", "\xef\xbf\xbd", "aab", "aaa", "a.b", "a)$", "a)",
}

func TestSimpleRegex(t *testing.T) {
	for _, p := range simplePatterns {
		s := compileSimple(p.expr)
		if (s != nil) != p.simple {
			t.Errorf("compileSimple(%q): simple %v, want %v", p.expr, s != nil, p.simple)
		}
		if s == nil {
			continue
		}
		re, err := compileRegex(p.expr)
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range simpleInputs {
			if got, want := s.match(in), re.MatchString(in); got != want {
				t.Errorf("%q on %q: %v, package regexp says %v", p.expr, in, got, want)
			}
		}
	}
}

// FuzzSimpleRegex checks that a match's regex is anchored right and that
// simpleRE decides as package regexp does.
func FuzzSimpleRegex(f *testing.F) {
	for _, p := range simplePatterns {
		for _, in := range simpleInputs[:8] {
			f.Add(p.expr, in)
		}
	}
	f.Fuzz(func(t *testing.T, expr, in string) {
		re, err := compileRegex(expr)
		if err != nil {
			return
		}
		// The anchored expression matches a value when the expression
		// matches all of it.
		whole := regexp.MustCompile(expr).FindStringIndex(in)
		if anchored := re.MatchString(in); anchored && whole == nil || !anchored && whole != nil && whole[0] == 0 && whole[1] == len(in) {
			t.Fatalf("%q on %q: anchored %v, unanchored match at %v", expr, in, anchored, whole)
		}
		s := compileSimple(expr)
		if s == nil {
			return
		}
		if got, want := s.match(in), re.MatchString(in); got != want {
			t.Fatalf("%q on %q: %v, package regexp says %v", expr, in, got, want)
		}
	})
}
