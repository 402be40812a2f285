package daemon

import (
	"time"

	"go.uber.org/zap"

	"github.com/integrityd/integrityd/internal/baseline"
	"github.com/integrityd/integrityd/internal/finding"
	"github.com/integrityd/integrityd/internal/verify"
)

// The loop's parts. Each is a plain struct the loop owns: only the loop's
// goroutine touches it (no lock), it holds the state of one job, and its
// methods are what changes that state. l is the loop it is part of, for
// what the parts share (the settings, the log, the scopes, the other
// parts); the state of a part is its own fields, changed by its methods
// only. staged, swapLog and goneApps need nothing of the loop: the loop,
// the rechecker and the catalog act on what they say.

// record is the findings store: what is wrong, by scope and path, the
// alerts held back during an update by hand (fold.go) and what of it is
// published to readers (replace, drop, publish: findings.go; the fold:
// fold.go; the releases: release.go).
type record struct {
	l         *loop
	findings  findingSet // findings.go
	folds     folds      // fold.go
	version   uint64     // increases when what the state file records changes
	changed   bool       // something the snapshot shows changed since publish
	published time.Time  // when the last snapshot was published
	publishAt time.Time  // when what changed since is published (zero: nothing waits)
}

// rechecker is the live recheck of what a batch changed (batch.go): the
// loop classifies the batch's paths into a plan (loop.apply), the
// rechecker rechecks the keys of each scope, holds scopes being updated
// until they are quiet (settle.go) and hashes big files off the loop
// (bigfiles.go).
type rechecker struct {
	l          *loop
	big        offLoop           // big files being hashed off the loop (bigfiles.go)
	settleDone chan settleResult // the whole checks of held scopes (settle.go)
}

// catalog keeps the set of scopes in step with the install (which apps
// there are, syncScopes) and says where a changed path belongs (locate;
// scopes.go).
type catalog struct {
	l         *loop
	extraTree map[string]bool // watched trees added for symlinked apps
}

// watches is the watch set-up and its re-syncs and the files the writers
// track (watches.go), the mounts (mounts.go) and the followed trees at
// the install's paths (roots.go).
type watches struct {
	l            *loop
	trees        map[string]treeID // what stands at the followed trees' paths (roots.go)
	resynced     <-chan struct{}   // closed once the watcher's last re-sync is done
	linksChanged bool              // the files the writers track are to be listed again
}

// scheduler starts the full scans and re-verification passes (scan.go,
// reverify.go) and merges their results.
type scheduler struct {
	l *loop
	q scanQueue // the full scan running, the one queued, the next due (scanqueue.go)
}

// unsignedCode is the unsigned coverage (unsigned.go): the baseline (nil:
// not checked), the coverage, what it holds now (nil before the first
// full scan). Its findings are kept under one pseudo-scope
// (baseline.ScopeName): it is checked, as a signed scope is.
type unsignedCode struct {
	l     *loop
	base  *baseline.Baseline
	cov   *baseline.Coverage
	files baseline.Files
}

// checked is what findings are kept under and replaced by the record: a
// signed scope, or the unsigned coverage, whose findings are those of one
// pseudo-scope (baseline.ScopeName). The generic paths (replace, the
// fold, the releases) ask it rather than test which one it is.
type checked interface {
	// name is the scope its findings are kept under.
	name() string
	// abs is the absolute path of one of its keys.
	abs(key string) string
	// inForce is the manifest its files are checked against, or the
	// last one in force (nil: none; the unsigned coverage has none).
	inForce() *verify.Expected
	// interner interns the paths of its findings (nil: not interned).
	interner() func(string) string
	// withRelease returns fresh, a recheck at key, with what the
	// recorded releases say of it (release.go; nothing for the unsigned
	// coverage).
	withRelease(rc *record, key string, fresh []finding.Finding) []finding.Finding
	// folding reports whether its new alerts may wait in a fold
	// (fold.go; never for the unsigned coverage).
	folding(rc *record) bool
}

// swapLog is what the loop remembers of the names new files took lately
// (swap.go).
type swapLog struct {
	seen map[string]swapSeen
}

// goneApps are the signed apps whose directory went moments ago
// (appupdate.go), by name.
type goneApps struct {
	log *zap.Logger
	by  map[string]goneApp
}
