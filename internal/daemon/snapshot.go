package daemon

import (
	"fmt"
	"time"

	"github.com/integrityd/integrityd/internal/finding"
	"github.com/integrityd/integrityd/internal/state"
)

// Snapshot is the daemon's state at one moment, published by the loop and
// never changed afterwards: safe to read from any goroutine.
type Snapshot struct {
	Seq       uint64 // increases with each snapshot
	Version   uint64 // increases when what the state file records changes
	Batches   uint64 // batches of events handled so far
	Published time.Time
	Scopes    int  // scopes checked
	Files     int  // files the verified manifests list
	Settling  int  // scopes held while they are being updated
	Folding   int  // scopes whose alerts wait while many files change (fold.go), files and manifests read again once written (writing.go)
	Scanning  bool // a full scan runs or is queued

	findings map[string]map[string]*finding.Finding // shared with the loop, read-only
	meta     state.State                            // scan metadata, without findings
}

// Findings returns a copy of the findings in report order.
func (s *Snapshot) Findings() []finding.Finding {
	ptrs := s.sorted()
	out := make([]finding.Finding, len(ptrs))
	for i, f := range ptrs {
		out[i] = *f
	}
	return out
}

// Count is the number of findings.
func (s *Snapshot) Count() int {
	n := 0
	for _, m := range s.findings {
		n += len(m)
	}
	return n
}

// WatchedDirs is the number of directories with a watch, and Degraded why
// some could not be watched ("" when none).
func (s *Snapshot) WatchedDirs() (int, string) { return s.meta.WatchedDirs, s.meta.Degraded }

// sorted returns the findings in report order, shared with s (a slice of
// pointers: the findings are not copied).
func (s *Snapshot) sorted() []*finding.Finding {
	out := make([]*finding.Finding, 0, s.Count())
	for _, m := range s.findings {
		for _, f := range m {
			out = append(out, f)
		}
	}
	finding.SortPtrs(out)
	return out
}

// statusLine is the one-line summary for systemctl status.
func (s *Snapshot) statusLine() string {
	line := fmt.Sprintf("watching %s files in %d scopes; %d findings", thousands(s.Files), s.Scopes, s.Count())
	if s.meta.Degraded != "" {
		line += "; degraded: some directories not watched"
	}
	return line
}
