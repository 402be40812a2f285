package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

// TestDocCommentNames: a doc comment of a declaration in the module starts
// with the name it documents, never with another identifier (a function
// or variable renamed without its comment: "findingsError reports ..." on
// errFindings, "bigDone takes ..." on bigFinished). A first word that is a
// name declared in the package, or camelCase, and not the declaration's
// own, is a stale name.
func TestDocCommentNames(t *testing.T) {
	var dirs []string
	err := filepath.WalkDir("../..", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".") && p != "../..") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(p, ".go") && !strings.HasSuffix(p, "_test.go") {
			if n := len(dirs); n == 0 || dirs[n-1] != filepath.Dir(p) {
				dirs = append(dirs, filepath.Dir(p))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range dirs {
		fset := token.NewFileSet()
		names, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		var files []*ast.File
		for _, name := range names {
			if strings.HasSuffix(name, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(fset, name, nil, parser.ParseComments)
			if err != nil {
				t.Fatal(err)
			}
			files = append(files, f)
		}
		for _, bad := range staleDocNames(fset, files) {
			t.Error(bad)
		}
	}
}

func staleDocNames(fset *token.FileSet, files []*ast.File) []string {
	type decl struct {
		name string
		doc  *ast.CommentGroup
		pos  token.Pos
	}
	names := map[string]bool{}
	var ds []decl
	for _, f := range files {
		for _, d := range f.Decls {
			switch x := d.(type) {
			case *ast.FuncDecl:
				names[x.Name.Name] = true
				ds = append(ds, decl{x.Name.Name, x.Doc, x.Pos()})
			case *ast.GenDecl:
				for _, s := range x.Specs {
					doc := x.Doc
					switch y := s.(type) {
					case *ast.TypeSpec:
						names[y.Name.Name] = true
						if y.Doc != nil || len(x.Specs) > 1 {
							doc = y.Doc
						}
						ds = append(ds, decl{y.Name.Name, doc, y.Pos()})
					case *ast.ValueSpec:
						for _, n := range y.Names {
							names[n.Name] = true
						}
						if y.Doc != nil || len(x.Specs) > 1 {
							doc = y.Doc
						}
						if len(y.Names) == 1 {
							ds = append(ds, decl{y.Names[0].Name, doc, y.Pos()})
						}
					}
				}
			}
		}
	}
	var out []string
	for _, d := range ds {
		if d.doc == nil {
			continue
		}
		words := strings.Fields(d.doc.Text())
		if len(words) == 0 {
			continue
		}
		w := strings.TrimRight(words[0], ",.:;")
		if w != d.name && (names[w] || camelCase(w)) {
			out = append(out, fset.Position(d.pos).String()+": the doc comment of "+d.name+" starts with "+w)
		}
	}
	return out
}

// camelCase reports whether w looks like an unexported Go name with a
// capital inside (bigDone), not an English word.
func camelCase(w string) bool {
	if w == "" || w[0] < 'a' || w[0] > 'z' {
		return false
	}
	up := false
	for _, c := range w {
		switch {
		case c >= 'A' && c <= 'Z':
			up = true
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		default:
			return false
		}
	}
	return up
}
