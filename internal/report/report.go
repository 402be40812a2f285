package report

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/integrityd/integrityd/internal/finding"
	"github.com/integrityd/integrityd/internal/kind"
	"github.com/integrityd/integrityd/internal/phpcompat"
	"github.com/integrityd/integrityd/internal/verify"
)

// node is a PHP array as Nextcloud builds its results: ordered keys with
// string or array values.
type node struct {
	key   string
	val   string
	kids  []node
	arr   bool
	false bool // PHP's false (a hash that could not be computed)
}

// tree returns the results of s in Nextcloud's shape:
// KIND => path => {expected, current}, or EXCEPTION => {class, message}.
func scopeTree(s verify.ScopeResult) node {
	n := node{key: s.Scope, arr: true}
	if e := s.Exception; e != nil {
		n.kids = append(n.kids, node{key: "EXCEPTION", arr: true, kids: []node{
			{key: "class", val: e.Class}, {key: "message", val: e.Message}}})
		return n
	}
	var fileErrs []*finding.Finding
	for i, f := range s.Findings {
		if f.Kind == kind.Exception {
			fileErrs = append(fileErrs, &s.Findings[i])
			continue
		}
		if len(n.kids) == 0 || n.kids[len(n.kids)-1].key != string(f.Kind) {
			n.kids = append(n.kids, node{key: string(f.Kind), arr: true})
		}
		k := &n.kids[len(n.kids)-1]
		exp := node{key: "expected", val: f.ExpectedValue()}
		// A file Nextcloud could not hash (a dangling symlink, say) has
		// hash_file's false as its current hash.
		cur := node{key: "current", val: f.Current.String(), false: f.Kind == kind.ExtraFile && f.Current.IsZero()}
		k.kids = append(k.kids, node{key: f.Path, arr: true, kids: []node{exp, cur}})
	}
	if len(fileErrs) > 0 {
		// Nextcloud's EXCEPTION is {class, message}; the files and why
		// are in integrityd's own detail-json format.
		msg := fmt.Sprintf("%d files could not be read (integrityd check --output detail-json lists them and why).", len(fileErrs))
		if len(fileErrs) == 1 {
			msg = "1 file could not be read (integrityd check --output detail-json names it and why)."
		}
		n.kids = append(n.kids, node{key: "EXCEPTION", arr: true, kids: []node{
			{key: "class", val: verify.ReadErrorClass}, {key: "message", val: msg}}})
	}
	return n
}

func reportTree(r *verify.Report) node {
	root := node{arr: true}
	for _, s := range r.Scopes {
		if t := scopeTree(s); len(t.kids) > 0 {
			root.kids = append(root.kids, t)
		}
	}
	return root
}

// Formats accepted by Format: Nextcloud's four (occ's plain, json and
// json_pretty, the admin page's text), then integrityd's own detail-json.
var Formats = []string{"text", "plain", "json", "json_pretty", "detail-json"}

// Format writes the report r in one of Formats. single is true for the
// one-scope commands (check-core, check-app): like occ, they print that
// scope's results without the scope level.
func Format(r *verify.Report, format string, single bool) ([]byte, error) {
	t := reportTree(r)
	if single {
		if len(t.kids) == 1 {
			t = node{arr: true, kids: t.kids[0].kids}
		}
	}
	var b bytes.Buffer
	switch format {
	case "json", "json_pretty":
		if err := writeJSON(&b, t, format == "json_pretty", 0); err != nil {
			return nil, err
		}
		b.WriteByte('\n')
	case "plain":
		writePlain(&b, t, "  - ")
	case "text":
		writeText(&b, r, reportTree(r))
	case "detail-json":
		if err := writeDetail(&b, r); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("unknown output format %q (want one of %s)", format, strings.Join(Formats, ", "))
	}
	return b.Bytes(), nil
}

// writeJSON writes n as PHP's json_encode (JSON_PRETTY_PRINT when pretty)
// would: an empty array is [].
func writeJSON(b *bytes.Buffer, n node, pretty bool, depth int) error {
	if n.false {
		b.WriteString("false")
		return nil
	}
	if !n.arr {
		s, err := phpcompat.AppendString(nil, n.val)
		if err != nil {
			// File names need not be UTF-8; keep them readable.
			s, _ = phpcompat.AppendString(nil, strings.ToValidUTF8(n.val, "\uFFFD"))
		}
		b.Write(s)
		return nil
	}
	if len(n.kids) == 0 {
		b.WriteString("[]")
		return nil
	}
	b.WriteByte('{')
	for i, k := range n.kids {
		if i > 0 {
			b.WriteByte(',')
		}
		if pretty {
			b.Write(phpcompat.AppendIndent(nil, depth+1))
		}
		if err := writeJSON(b, node{val: k.key}, pretty, 0); err != nil {
			return err
		}
		b.WriteByte(':')
		if pretty {
			b.WriteByte(' ')
		}
		if err := writeJSON(b, k, pretty, depth+1); err != nil {
			return err
		}
	}
	if pretty {
		b.Write(phpcompat.AppendIndent(nil, depth))
	}
	b.WriteByte('}')
	return nil
}

// writePlain is occ's plain output (Base::writeArrayInOutputFormat).
func writePlain(b *bytes.Buffer, n node, prefix string) {
	for _, k := range n.kids {
		if k.arr {
			fmt.Fprintf(b, "%s%s:\n", prefix, finding.EscapeControl(k.key))
			writePlain(b, k, "  "+prefix)
			continue
		}
		fmt.Fprintf(b, "%s%s: %s\n", prefix, finding.EscapeControl(k.key), finding.EscapeControl(k.val))
	}
}

// writeText is the admin page's "List of invalid files" (with a link to
// the documentation the page links, and a count at the end).
func writeText(b *bytes.Buffer, r *verify.Report, t node) {
	if len(t.kids) == 0 {
		b.WriteString("No errors have been found.\n")
		return
	}
	b.WriteString("Technical information\n" +
		"=====================\n" +
		"The following list covers which files have failed the integrity check. Please read\n" +
		"Nextcloud's documentation (" + docURL + ")\n" +
		"to learn more about the errors and how to fix them.\n\n" +
		"Results\n" +
		"=======\n")
	for _, scope := range t.kids {
		fmt.Fprintf(b, "- %s\n", finding.EscapeControl(scope.key))
		for _, cat := range scope.kids {
			fmt.Fprintf(b, "\t- %s\n", cat.key)
			for _, item := range cat.kids {
				if cat.key == "EXCEPTION" {
					fmt.Fprintf(b, "\t\t- %s\n", finding.EscapeControl(item.val))
				} else {
					fmt.Fprintf(b, "\t\t- %s\n", finding.EscapeControl(item.key))
				}
			}
		}
	}
	b.WriteString("\nRaw output\n==========\n")
	printR(b, t, 0)
	b.WriteString("\n" + summary(r) + "\n")
}

// docURL is Nextcloud's page on code signing and its results.
const docURL = "https://docs.nextcloud.com/server/latest/admin_manual/issues/code_signing.html"

// summary counts the findings: "3 findings in 2 of 5 scopes: INVALID_HASH 1, ...".
func summary(r *verify.Report) string {
	counts := map[kind.Kind]int{}
	total, bad := 0, 0
	for _, s := range r.Scopes {
		if !s.Clean() {
			bad++
		}
		for _, f := range s.AllFindings() {
			counts[f.Kind]++
			total++
		}
	}
	var parts []string
	for _, k := range kind.All() {
		if counts[k] > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", k, counts[k]))
		}
	}
	return fmt.Sprintf("%d findings in %d of %d scopes checked: %s", total, bad, len(r.Scopes), strings.Join(parts, ", "))
}

// printR is PHP's print_r($array, true).
func printR(b *bytes.Buffer, n node, indent int) {
	b.WriteString("Array\n")
	pad := strings.Repeat(" ", indent)
	b.WriteString(pad + "(\n")
	for _, k := range n.kids {
		fmt.Fprintf(b, "%s    [%s] => ", pad, finding.EscapeControl(k.key))
		if k.arr {
			printR(b, k, indent+8)
		} else {
			b.WriteString(finding.EscapeControl(k.val))
		}
		b.WriteString("\n")
	}
	b.WriteString(pad + ")\n")
}

// detailFormat names the detail-json format and its version: a consumer
// checks it, and a change that is not only an addition changes it.
const detailFormat = "integrityd-detail/1"

// writeDetail writes integrityd's own report: every finding with
// everything integrityd knows of it (the files an EXCEPTION is about and
// why, the reason of a HARD_LINK or DUPLICATE_APP, names that are not
// UTF-8 in path_b64), and per scope its directory, the signature's digest
// and what was hashed. docs/security.md describes the fields.
func writeDetail(b *bytes.Buffer, r *verify.Report) error {
	type scope struct {
		Scope    string            `json:"scope"`
		ScopeB64 []byte            `json:"scope_b64,omitempty"`
		Dir      string            `json:"dir,omitempty"`
		Digest   verify.Digest     `json:"digest,omitempty"`
		Files    int               `json:"files"`
		Bytes    int64             `json:"bytes"`
		Clean    bool              `json:"clean"`
		Findings []finding.Finding `json:"findings"`
	}
	out := struct {
		Format string  `json:"format"`
		Clean  bool    `json:"clean"`
		Scopes []scope `json:"scopes"`
	}{Format: detailFormat, Clean: r.Clean(), Scopes: []scope{}}
	for _, s := range r.Scopes {
		sc := scope{Scope: s.Scope, Dir: s.Dir, Digest: s.Digest, Files: s.Files, Bytes: s.Bytes, Clean: s.Clean(),
			Findings: append([]finding.Finding{}, s.AllFindings()...)}
		if !utf8.ValidString(s.Scope) {
			sc.Scope, sc.ScopeB64 = strings.ToValidUTF8(s.Scope, "\uFFFD"), []byte(s.Scope)
		}
		out.Scopes = append(out.Scopes, sc)
	}
	enc := json.NewEncoder(b)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
