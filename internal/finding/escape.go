package finding

import "strconv"

// EscapeControl keeps file names from forging lines in text output (the
// reports, the journal's MESSAGE): control characters and invalid UTF-8
// are shown Go-quoted; s is returned as it is when it has none.
func EscapeControl(s string) string {
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == '\uFFFD' {
			q := strconv.Quote(s)
			return q[1 : len(q)-1]
		}
	}
	return s
}
