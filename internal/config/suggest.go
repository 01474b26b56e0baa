package config

import (
	"fmt"
	"strings"
)

// didYouMean returns `did you mean "x"?` for the candidate closest to got,
// or fallback when none is close enough to be a plausible typo.
func didYouMean(got string, candidates []string, fallback string) string {
	if s := closest(got, candidates); s != "" {
		return fmt.Sprintf("did you mean %q?", s)
	}
	return fallback
}

// closest returns the candidate with the smallest edit distance to got when
// that distance is small relative to the length, else "".
func closest(got string, candidates []string) string {
	best, bestD := "", -1
	g := strings.ToLower(got)
	for _, c := range candidates {
		d := distance(g, strings.ToLower(c))
		if bestD < 0 || d < bestD {
			best, bestD = c, d
		}
	}
	limit := max(2, len(got)/3)
	if bestD < 0 || bestD > limit || bestD == 0 && best == got {
		return ""
	}
	return best
}

// distance is the Levenshtein edit distance between a and b (bytes).
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// quoteList renders ["a" "b"] as `a, b`.
func quoteList(list []string) string { return strings.Join(list, ", ") }
