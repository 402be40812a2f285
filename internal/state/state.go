// Package state persists what integrityd knows across restarts: the
// current findings (so that a restart does not alert again on what was
// already reported) and metadata about the last scans, which the status
// command reads. Writes are atomic (temporary file, fsync, rename, fsync of
// the directory); a missing or corrupt file means "no previous state".
package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/integrityd/integrityd/internal/finding"
	"github.com/integrityd/integrityd/internal/fsutil"
)

// FileName is the state file inside the state directory.
const FileName = "state.json"

// formatVersion changes when the file's meaning changes.
const formatVersion = 1

// maxSize bounds the state file (findings of a whole install fit easily).
const maxSize = 256 << 20

// State is what persists.
type State struct {
	Version  int               `json:"version"`
	PID      int               `json:"pid"`
	Updated  time.Time         `json:"updated"`
	Findings []finding.Finding `json:"findings,omitempty"`
	// Complete is false until the first full scan of this run finished;
	// findings then reflect a full scan.
	Complete         bool          `json:"complete"`
	LastFullScan     time.Time     `json:"last_full_scan"`
	LastFullDuration time.Duration `json:"last_full_scan_duration_ns"`
	RescanInterval   time.Duration `json:"rescan_interval_ns"`
	Files            int           `json:"files"`
	Scopes           int           `json:"scopes"`
	WatchedDirs      int           `json:"watched_dirs"`
	// Degraded says why watching is incomplete ("" when it is not).
	Degraded string `json:"degraded,omitempty"`
	// TrustDiffers says how the install's root.crt differs from the
	// pinned trust anchors ("" when it does not, or nothing is pinned).
	TrustDiffers string `json:"trust_differs,omitempty"`
	// Signed are the apps whose manifest verified once, by name, with
	// their directory: an app that loses its manifest stays checked.
	Signed map[string]string `json:"signed_apps,omitempty"`
	// Releases are the highest release the daemon verified of each scope
	// (core's $OC_Version, an app's <version>): a lower one is a
	// VERSION_DOWNGRADE until an admin accepts it.
	Releases map[string]string `json:"releases,omitempty"`
	// Unsigned says whether code no signature covers is checked, and
	// against which baseline (the daemon's line at start); UnsignedFiles
	// is how many such files it covers.
	Unsigned      string `json:"unsigned,omitempty"`
	UnsignedFiles int    `json:"unsigned_files,omitempty"`
}

// Path is the state file in dir.
func Path(dir string) string { return filepath.Join(dir, FileName) }

// Load reads the state in dir. A missing file returns (nil, nil); a
// corrupt one returns an error that names it.
func Load(dir string) (*State, error) {
	p := Path(dir)
	f, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read state: %w", err) // names p
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > maxSize {
		return nil, fmt.Errorf("read state %s: larger than %d bytes", p, maxSize)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxSize+1))
	if err != nil {
		return nil, fmt.Errorf("read state %s: %w", p, err)
	}
	if len(data) > maxSize {
		return nil, fmt.Errorf("read state %s: larger than %d bytes", p, maxSize)
	}
	var s State
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("read state %s: corrupt: %v", p, err)
	}
	if s.Version != formatVersion {
		return nil, fmt.Errorf("read state %s: version %d, want %d", p, s.Version, formatVersion)
	}
	return &s, nil
}

// Save writes s to dir atomically.
func Save(dir string, s *State) error {
	s.Version = formatVersion
	fs := make([]*finding.Finding, len(s.Findings))
	for i := range s.Findings {
		fs[i] = &s.Findings[i]
	}
	meta := *s
	meta.Findings = nil
	return SaveFindings(dir, &meta, fs)
}

// SaveFindings writes meta with findings fs (meta.Findings is ignored) to
// dir atomically, streaming the findings one by one: the JSON of a whole
// install's findings is never in memory at once.
func SaveFindings(dir string, meta *State, fs []*finding.Finding) error {
	m := *meta
	m.Version = formatVersion
	m.Findings = nil
	head, err := json.Marshal(&m) // {"version":...}, findings omitted
	if err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	if err := MakeDir(dir); err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	return fsutil.WriteAtomic(Path(dir), FileMode, func(w io.Writer) error {
		if _, err := io.WriteString(w, `{"findings":[`); err != nil {
			return err
		}
		for i, f := range fs {
			data, err := json.Marshal(f)
			if err != nil {
				return err
			}
			if i > 0 {
				data = append([]byte{','}, data...)
			}
			if _, err := w.Write(data); err != nil {
				return err
			}
		}
		_, err := fmt.Fprintf(w, "],%s", head[1:])
		return err
	})
}

// CleanTemp removes temporary files that an interrupted Save left.
func CleanTemp(dir string) {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "."+FileName+".tmp-") {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}
