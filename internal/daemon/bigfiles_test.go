package daemon

import (
	"context"
	"testing"
)

func TestOffLoop(t *testing.T) {
	ctx := context.Background()
	o := newOffLoop()
	k := bigKey{"core", "lib/big.bin"}
	release := make(chan struct{})
	o.run(ctx, bigResult{k: k}, func(r *bigResult) { <-release; r.links = []string{"done"} })
	o.run(ctx, bigResult{k: k}, func(*bigResult) { t.Error("a second run for the same file while one runs") })
	if !o.busy() {
		t.Fatal("not busy with a file being hashed")
	}
	o.looked("core", "lib", []string{"lib/other.bin"}) // a recheck of lib/ meanwhile
	o.looked("core", "lib", []string{k.key})           // ... one that left this file to the worker
	o.looked("files", "", nil)                         // another scope's
	close(release)
	r := <-o.done
	if r.k != k || len(r.links) != 1 {
		t.Fatalf("result %+v", r)
	}
	if !o.finished(k) {
		t.Error("a change meanwhile: want it run again")
	}
	if !o.takeStale(k) || o.takeStale(k) {
		t.Error("looked at meanwhile: want stale once")
	}
	if o.busy() || o.finished(k) {
		t.Error("still busy, or again twice")
	}

}
