package route

import (
	"regexp/syntax"
	"unicode/utf8"
)

// simpleRE matches the common, simple regular expressions of route rules
// ("v[0-9]+", "ios-.*", ".*-canary", "[a-z]+-[0-9]{2,4}") as whole values,
// in a few nanoseconds where package regexp takes a hundred or more. It
// takes a sequence of literals and single-character classes, each repeated
// a fixed or bounded number of times, such that one left-to-right greedy
// pass decides the match:
//
//   - every element repeated a variable number of times, but the last
//     element, is followed by an element that needs at least one
//     character, and that character cannot be one the repeated element
//     takes; or
//   - that holds up to the last element repeated a variable number of
//     times, and only literals follow it: they are matched at the end of
//     the value, and the element takes what is left in between.
//
// compileSimple returns nil for anything else (alternations, case folding,
// nested repetitions, ...), which package regexp then matches. A match
// decides as package regexp does, invalid UTF-8 included (each bad byte
// is U+FFFD): FuzzSimpleRegex compares the two.
//
// A leading literal and a trailing one are taken off first: pre and tail.
type simpleRE struct {
	pre    string // a literal the value starts with
	head   []elem // matched left to right
	middle *elem  // the last variable element: takes what head and tail leave
	tail   string // a literal the value ends with
}

// elem is a literal, or a character class repeated min to max times.
type elem struct {
	lit      string
	ascii    [2]uint64 // the class's runes below 128
	ranges   []rune    // the class's runes from 128, as lo, hi pairs
	min, max int       // max < 0: no bound
}

func (e *elem) variable() bool { return e.lit == "" && e.min != e.max }

func (e *elem) has(r rune) bool {
	if r < utf8.RuneSelf {
		return e.ascii[r>>6]&(1<<(r&63)) != 0
	}
	for i := 0; i+1 < len(e.ranges); i += 2 {
		if r < e.ranges[i] {
			return false
		}
		if r <= e.ranges[i+1] {
			return true
		}
	}
	return false
}

// maxSimpleRepeat bounds the {n,m} counts compileSimple takes.
const maxSimpleRepeat = 1000

// compileSimple compiles expr (as regexp.Compile would parse it, matched
// against whole values) or returns nil when it is not simple.
func compileSimple(expr string) *simpleRE {
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return nil
	}
	var es []elem
	if !flatten(re, &es) {
		return nil
	}
	// ^ and $ are implied: drop them at the ends, refuse them elsewhere.
	if len(es) > 0 && es[0].min == -1 && es[0].max == 0 { // begin marker
		es = es[1:]
	}
	if len(es) > 0 && es[len(es)-1].min == -2 { // end marker
		es = es[:len(es)-1]
	}
	for _, e := range es {
		if e.min < 0 {
			return nil
		}
	}
	// All of it left to right, if every variable element but the last
	// is followed by one that needs a character it cannot take.
	if greedySafe(es, len(es)-1) {
		s := &simpleRE{head: es}
		if n := len(es); n > 0 && es[n-1].lit != "" {
			// The element before cannot take the literal's first
			// character, so the literal is at the end.
			s.head, s.tail = es[:n-1], es[n-1].lit
		}
		return s.trimPre()
	}
	// Else the last variable element in the middle, literals after it.
	last := -1
	for i := range es {
		if es[i].variable() {
			last = i
		}
	}
	s := &simpleRE{head: es[:last], middle: &es[last]}
	for _, e := range es[last+1:] {
		if e.lit == "" {
			return nil
		}
		s.tail += e.lit
	}
	if !greedySafe(es[:last+1], last) {
		return nil
	}
	return s.trimPre()
}

// trimPre takes a leading literal element off head into pre.
func (s *simpleRE) trimPre() *simpleRE {
	if len(s.head) > 0 && s.head[0].lit != "" {
		s.pre, s.head = s.head[0].lit, s.head[1:]
	}
	return s
}

// greedySafe reports whether every variable element of es before index
// end is followed by an element that needs a character it cannot take.
func greedySafe(es []elem, end int) bool {
	for i := 0; i < end; i++ {
		if !es[i].variable() {
			continue
		}
		if next := &es[i+1]; next.min < 1 || !disjoint(&es[i], next) {
			return false
		}
	}
	return true
}

// flatten appends the elements of re to es; false when re is not simple.
// Markers: {min: -1} for ^, {min: -2} for $.
func flatten(re *syntax.Regexp, es *[]elem) bool {
	switch re.Op {
	case syntax.OpEmptyMatch:
		return true
	case syntax.OpConcat:
		for _, s := range re.Sub {
			if !flatten(s, es) {
				return false
			}
		}
		return true
	case syntax.OpCapture:
		return flatten(re.Sub[0], es)
	case syntax.OpBeginText:
		*es = append(*es, elem{min: -1, max: 0})
		return true
	case syntax.OpEndText:
		*es = append(*es, elem{min: -2})
		return true
	case syntax.OpLiteral:
		if re.Flags&syntax.FoldCase != 0 {
			return false
		}
		for _, r := range re.Rune {
			if r == utf8.RuneError {
				return false
			}
		}
		lit := string(re.Rune)
		if n := len(*es); n > 0 && (*es)[n-1].lit != "" {
			(*es)[n-1].lit += lit
		} else {
			*es = append(*es, elem{lit: lit, min: 1, max: 1})
		}
		return true
	case syntax.OpCharClass, syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		e, ok := class(re)
		if !ok {
			return false
		}
		e.min, e.max = 1, 1
		*es = append(*es, e)
		return true
	case syntax.OpStar, syntax.OpPlus, syntax.OpQuest, syntax.OpRepeat:
		e, ok := class(re.Sub[0])
		if !ok {
			return false
		}
		switch re.Op {
		case syntax.OpStar:
			e.min, e.max = 0, -1
		case syntax.OpPlus:
			e.min, e.max = 1, -1
		case syntax.OpQuest:
			e.min, e.max = 0, 1
		default:
			if re.Min > maxSimpleRepeat || re.Max > maxSimpleRepeat {
				return false
			}
			e.min, e.max = re.Min, re.Max
		}
		*es = append(*es, e)
		return true
	}
	return false
}

// class returns the single-character class re is; false for anything else.
func class(re *syntax.Regexp) (elem, bool) {
	var e elem
	var rs []rune
	switch re.Op {
	case syntax.OpCharClass:
		rs = re.Rune
	case syntax.OpAnyChar:
		rs = []rune{0, utf8.MaxRune}
	case syntax.OpAnyCharNotNL:
		rs = []rune{0, '\n' - 1, '\n' + 1, utf8.MaxRune}
	case syntax.OpLiteral:
		if len(re.Rune) != 1 || re.Flags&syntax.FoldCase != 0 {
			return e, false
		}
		rs = []rune{re.Rune[0], re.Rune[0]}
	default:
		return e, false
	}
	for i := 0; i+1 < len(rs); i += 2 {
		lo, hi := rs[i], rs[i+1]
		for r := lo; r <= hi && r < utf8.RuneSelf; r++ {
			e.ascii[r>>6] |= 1 << (r & 63)
		}
		if hi >= utf8.RuneSelf {
			e.ranges = append(e.ranges, max(lo, utf8.RuneSelf), hi)
		}
	}
	return e, true
}

// disjoint reports whether no character a takes can begin b.
func disjoint(a, b *elem) bool {
	if b.lit != "" {
		r, _ := utf8.DecodeRuneInString(b.lit)
		return !a.has(r)
	}
	if a.ascii[0]&b.ascii[0] != 0 || a.ascii[1]&b.ascii[1] != 0 {
		return false
	}
	for i := 0; i+1 < len(a.ranges); i += 2 {
		for j := 0; j+1 < len(b.ranges); j += 2 {
			if a.ranges[i] <= b.ranges[j+1] && b.ranges[j] <= a.ranges[i+1] {
				return false
			}
		}
	}
	return true
}

// match reports whether the whole of v matches.
func (s *simpleRE) match(v string) bool {
	if len(v) < len(s.pre)+len(s.tail) || !hasPrefix(v, s.pre) || !hasPrefix(v[len(v)-len(s.tail):], s.tail) {
		return false
	}
	v = v[len(s.pre) : len(v)-len(s.tail)]
	for i := range s.head {
		e := &s.head[i]
		if e.lit != "" {
			if !hasPrefix(v, e.lit) {
				return false
			}
			v = v[len(e.lit):]
			continue
		}
		var ok bool
		if v, ok = e.take(v); !ok {
			return false
		}
	}
	if s.middle == nil {
		return v == ""
	}
	rest, ok := s.middle.take(v)
	return ok && rest == ""
}

// take matches the class e at the start of v, greedily, and returns what
// is left.
func (e *elem) take(v string) (string, bool) {
	limit := e.max
	if limit < 0 {
		limit = len(v) // a rune takes a byte at least
	}
	i, n := 0, 0
	for ; i < len(v) && n < limit; n++ {
		if c := v[i]; c < utf8.RuneSelf {
			if e.ascii[c>>6]&(1<<(c&63)) == 0 {
				break
			}
			i++
		} else {
			r, size := utf8.DecodeRuneInString(v[i:])
			if !e.has(r) {
				break
			}
			i += size
		}
	}
	return v[i:], n >= e.min
}

// hasPrefix is strings.HasPrefix, comparing the short prefixes of route
// rules byte by byte rather than calling the runtime's memequal.
func hasPrefix(v, prefix string) bool {
	if len(v) < len(prefix) {
		return false
	}
	if len(prefix) > 16 {
		return v[:len(prefix)] == prefix
	}
	for i := 0; i < len(prefix); i++ {
		if v[i] != prefix[i] {
			return false
		}
	}
	return true
}
