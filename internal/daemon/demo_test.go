package daemon

import (
	"context"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"sync"

	"github.com/integrityd/integrityd/internal/demo"
)

// A demo tree costs four RSA-2048 key generations (the CA, core and two
// apps), most of the CPU of a small test under -race: the tests copy one
// tree, built once per test binary, and share its keys (each gets its own
// Keys, whose maps Sign adds to). The template is never changed.
var demoTemplate struct {
	once sync.Once
	dir  string
	keys *demo.Keys
	err  error
}

// removeDemoTemplate is for TestMain, after the tests.
func removeDemoTemplate() {
	if demoTemplate.dir != "" {
		os.RemoveAll(demoTemplate.dir)
	}
}

// buildDemo is demo.BuildWithKeys, from the template: the same files,
// signed by the same keys.
func buildDemo(ctx context.Context, root string) (*demo.Keys, error) {
	t := &demoTemplate
	t.once.Do(func() {
		if t.dir, t.err = os.MkdirTemp("", "integrityd-demo-"); t.err != nil {
			return
		}
		t.keys, t.err = demo.BuildWithKeys(context.Background(), filepath.Join(t.dir, "nc"))
	})
	if t.err != nil {
		return nil, t.err
	}
	src := filepath.Join(t.dir, "nc")
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		dst := filepath.Join(root, rel)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.MkdirAll(dst, fi.Mode().Perm())
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, data, fi.Mode().Perm())
	})
	if err != nil {
		return nil, err
	}
	return &demo.Keys{CAKey: t.keys.CAKey, CACert: t.keys.CACert, Key: maps.Clone(t.keys.Key), Cert: maps.Clone(t.keys.Cert)}, nil
}

// buildDemoTree is demo.Build, from the template.
func buildDemoTree(ctx context.Context, root string) error {
	_, err := buildDemo(ctx, root)
	return err
}
