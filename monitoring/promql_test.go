package monitoring_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"unicode"
)

// promqlKeywords are identifiers that are not metric names.
var promqlKeywords = map[string]bool{
	"and": true, "or": true, "unless": true, "bool": true, "offset": true, "inf": true, "nan": true,
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
}

// labelListKeywords are followed by a parenthesised list of label names.
var labelListKeywords = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
}

// aggregations may be followed by by/without before their parentheses.
var aggregations = map[string]bool{
	"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true, "stdvar": true,
	"count": true, "count_values": true, "bottomk": true, "topk": true, "quantile": true,
}

// metricNames returns the metric names a PromQL expression selects, in
// order of first use: identifiers that are not keywords, function or
// aggregation names, label names (inside {...} and the lists after by,
// without, on, ignoring, group_left, group_right), string contents,
// numbers, durations or Grafana variables ($x, ${x}).
func metricNames(expr string) ([]string, error) {
	var names []string
	rs := []rune(expr)
	i := 0
	skipSpace := func(j int) int {
		for j < len(rs) && unicode.IsSpace(rs[j]) {
			j++
		}
		return j
	}
	skipString := func(j int) (int, error) {
		q := rs[j]
		for j++; j < len(rs); j++ {
			if rs[j] == '\\' && q != '`' {
				j++
				continue
			}
			if rs[j] == q {
				return j + 1, nil
			}
		}
		return 0, fmt.Errorf("unterminated string in %q", expr)
	}
	// skipTo skips to after the bracket closing the one at j.
	skipTo := func(j int, open, close rune) (int, error) {
		depth := 0
		for j < len(rs) {
			switch r := rs[j]; {
			case r == '"' || r == '\'' || r == '`':
				k, err := skipString(j)
				if err != nil {
					return 0, err
				}
				j = k
				continue
			case r == open:
				depth++
			case r == close:
				depth--
				if depth == 0 {
					return j + 1, nil
				}
			}
			j++
		}
		return 0, fmt.Errorf("unbalanced %c in %q", open, expr)
	}
	isIdentStart := func(r rune) bool { return r == '_' || r == ':' || unicode.IsLetter(r) }
	isIdent := func(r rune) bool { return isIdentStart(r) || unicode.IsDigit(r) }
	for i < len(rs) {
		r := rs[i]
		switch {
		case unicode.IsSpace(r):
			i++
		case r == '"' || r == '\'' || r == '`':
			k, err := skipString(i)
			if err != nil {
				return nil, err
			}
			i = k
		case r == '{':
			k, err := skipTo(i, '{', '}')
			if err != nil {
				return nil, err
			}
			i = k
		case r == '[':
			k, err := skipTo(i, '[', ']')
			if err != nil {
				return nil, err
			}
			i = k
		case r == '#':
			for i < len(rs) && rs[i] != '\n' {
				i++
			}
		case r == '$':
			i++
			if i < len(rs) && rs[i] == '{' {
				k, err := skipTo(i, '{', '}')
				if err != nil {
					return nil, err
				}
				i = k
				continue
			}
			for i < len(rs) && isIdent(rs[i]) {
				i++
			}
		case unicode.IsDigit(r) || (r == '.' && i+1 < len(rs) && unicode.IsDigit(rs[i+1])):
			for i < len(rs) && (isIdent(rs[i]) || rs[i] == '.') {
				i++
			}
		case isIdentStart(r):
			j := i
			for j < len(rs) && isIdent(rs[j]) {
				j++
			}
			word := string(rs[i:j])
			next := skipSpace(j)
			nextWord := ""
			if next < len(rs) && isIdentStart(rs[next]) {
				k := next
				for k < len(rs) && isIdent(rs[k]) {
					k++
				}
				nextWord = string(rs[next:k])
			}
			switch {
			case labelListKeywords[word] && next < len(rs) && rs[next] == '(':
				k, err := skipTo(next, '(', ')')
				if err != nil {
					return nil, err
				}
				j = k
			case promqlKeywords[strings.ToLower(word)]:
			case next < len(rs) && rs[next] == '(':
				// a function or an aggregation
			case aggregations[word] && (nextWord == "by" || nextWord == "without"):
			default:
				if !slices.Contains(names, word) {
					names = append(names, word)
				}
			}
			i = j
		default:
			i++
		}
	}
	return names, nil
}

func TestMetricNames(t *testing.T) {
	cases := []struct {
		expr string
		want []string
	}{
		{`valguard_leader`, []string{"valguard_leader"}},
		{`sum by (validator) (valguard_leader) < 1`, []string{"valguard_leader"}},
		{`sum(valguard_state{state="Validating", validator=~"$validator"}) by (validator) > 1`, []string{"valguard_state"}},
		{`min_over_time(valguard_lease_remaining_seconds[2m]) < 3 and valguard_leader == 1`,
			[]string{"valguard_lease_remaining_seconds", "valguard_leader"}},
		{`max by (validator) (a_height{x="y"}) - on (validator) group_right b_height`, []string{"a_height", "b_height"}},
		{`histogram_quantile(0.99, sum by (instance, le) (rate(x_bucket{v=~"$v"}[$__rate_interval])))`, []string{"x_bucket"}},
		{`time() - process_start_time_seconds offset 5m`, []string{"process_start_time_seconds"}},
		{`label_replace(up, "dst", "$1", "src", "(.*)") * ${scale} + 1e3 + 0x1f`, []string{"up"}},
		{`count without (state) (valguard_state == bool 1)`, []string{"valguard_state"}},
	}
	for _, tc := range cases {
		t.Run(tc.expr, func(t *testing.T) {
			got, err := metricNames(tc.expr)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
	for _, bad := range []string{`x{a="b"`, `x{a="b}`, `rate(x[5m)`} {
		if _, err := metricNames(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}
