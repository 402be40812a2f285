package arch

import (
	"bytes"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"testing"
)

const module = "github.com/integrityd/integrityd/"

// layers places each package of the module: a package may import only
// packages of a lower layer. A new package must be placed here.
var layers = map[string]int{
	"internal/kind":         0,
	"internal/fsutil":       0,
	"internal/phpcompat":    0,
	"internal/phpconf":      0,
	"internal/config":       0,
	"internal/version":      0,
	"internal/asnobody":     0,
	"internal/mountns":      0,
	"internal/tamperhelper": 0,
	"internal/arch":         0,
	"internal/oracledir":    0,
	"internal/finding":      1,
	"internal/mimetypelist": 2,
	"internal/journal":      2,
	"internal/state":        2,
	"internal/watch":        2,
	"internal/verify":       3,
	"internal/baseline":     4,
	"internal/report":       4,
	"internal/demo":         4,
	"internal/expect":       4,
	"internal/daemon":       5,
	"cmd/integrityd":        6,
	"bench/puresha512":      0, // a benchmark program: the pure SHA-512 cost of a tree
}

// never are imports that must not happen even through other packages
// (issue 18: watch imports neither journal nor verify; state and journal
// do not import verify; nothing below the daemon reaches it, the command
// or the report formats).
var never = map[string][]string{
	"internal/watch":        {"internal/journal", "internal/verify"},
	"internal/state":        {"internal/verify"},
	"internal/journal":      {"internal/verify"},
	"internal/verify":       {"internal/baseline", "internal/report", "internal/daemon", "cmd/integrityd"},
	"internal/baseline":     {"internal/daemon", "cmd/integrityd", "internal/report", "internal/journal", "internal/watch", "internal/state"},
	"internal/mimetypelist": {"internal/verify", "internal/daemon", "cmd/integrityd", "internal/report"},
	"internal/phpcompat":    {"internal/verify", "internal/daemon", "cmd/integrityd", "internal/report"},
	"internal/fsutil":       {"internal/verify", "internal/daemon", "cmd/integrityd", "internal/report"},
	"internal/kind":         {"internal/verify", "internal/daemon", "cmd/integrityd", "internal/report"},
	"internal/finding":      {"internal/verify", "internal/daemon", "cmd/integrityd", "internal/report"},
}

// imports returns the module's packages and their imports of the
// module's packages (non-test files), relative to the module.
func imports(t *testing.T) map[string][]string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH")
	}
	cmd := exec.Command(goTool, "list", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, module+"...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	graph := map[string][]string{}
	for line := range strings.Lines(string(out)) {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		pkg := strings.TrimPrefix(fields[0], module)
		graph[pkg] = nil
		for _, imp := range fields[1:] {
			if rel, ok := strings.CutPrefix(imp, module); ok {
				graph[pkg] = append(graph[pkg], rel)
			}
		}
	}
	if len(graph) < len(layers)/2 {
		t.Fatalf("go list found only %d packages: %q", len(graph), out)
	}
	return graph
}

// TestLayers: every package is placed, and imports only lower layers.
func TestLayers(t *testing.T) {
	graph := imports(t)
	for pkg, deps := range graph {
		l, ok := layers[pkg]
		if !ok {
			t.Errorf("%s is in no layer: place it in layers", pkg)
			continue
		}
		for _, d := range deps {
			if dl, ok := layers[d]; ok && dl >= l {
				t.Errorf("%s (layer %d) imports %s (layer %d): an arrow back up", pkg, l, d, dl)
			}
		}
	}
	for pkg := range layers {
		if _, ok := graph[pkg]; !ok {
			t.Errorf("%s is in layers but not in the module", pkg)
		}
	}
}

// TestNever: the imports the layering issue names, through any path.
func TestNever(t *testing.T) {
	graph := imports(t)
	for pkg, banned := range never {
		deps := closure(graph, pkg)
		for _, b := range banned {
			if path, ok := deps[b]; ok {
				t.Errorf("%s imports %s (through %s)", pkg, b, strings.Join(path, " -> "))
			}
		}
	}
}

// closure returns what pkg imports directly or not, each with one path
// from pkg to it.
func closure(graph map[string][]string, pkg string) map[string][]string {
	seen := map[string][]string{}
	var visit func(p string, path []string)
	visit = func(p string, path []string) {
		deps := slices.Clone(graph[p])
		sort.Strings(deps)
		for _, d := range deps {
			if _, ok := seen[d]; ok {
				continue
			}
			seen[d] = append(slices.Clone(path), d)
			visit(d, seen[d])
		}
	}
	visit(pkg, []string{pkg})
	return seen
}
