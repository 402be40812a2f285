package state

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// The heartbeat says that the daemon's loop goes round: the daemon
// touches HeartbeatDir/HeartbeatName every so often (its content) while
// its loop beats or it hashes, and leaves it alone when it is stopped
// (SIGSTOP) or its loop is wedged. status judges the daemon's health by
// it, not by the age of the last full scan. It is in a directory of its
// own: the daemon watches the state directory, and a touch there would
// wake its loop each time.
const (
	HeartbeatDir  = "live"
	HeartbeatName = "heartbeat"
	// heartbeatMisses is how many beats may be missed before the
	// daemon is not alive.
	heartbeatMisses = 10
)

// HeartbeatPath is the heartbeat file of state directory dir.
func HeartbeatPath(dir string) string { return filepath.Join(dir, HeartbeatDir, HeartbeatName) }

// StartHeartbeat writes the heartbeat file of dir, saying it is touched
// every every; that is a beat.
func StartHeartbeat(dir string, every time.Duration) error {
	d := filepath.Join(dir, HeartbeatDir)
	if err := os.MkdirAll(d, DirMode); err != nil {
		return fmt.Errorf("heartbeat: %w", err)
	}
	if err := os.Chmod(d, DirMode); err != nil {
		return fmt.Errorf("heartbeat: %w", err)
	}
	p := HeartbeatPath(dir)
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, []byte(every.String()+"\n"), FileMode); err != nil {
		return fmt.Errorf("heartbeat: %w", err)
	}
	if err := os.Chmod(tmp, FileMode); err != nil {
		return fmt.Errorf("heartbeat: %w", err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return fmt.Errorf("heartbeat: %w", err)
	}
	return nil
}

// Beat touches the heartbeat file of dir.
func Beat(dir string) error {
	now := time.Now()
	return os.Chtimes(HeartbeatPath(dir), now, now)
}

// HeartbeatStale says why the daemon of dir is not alive by its
// heartbeat ("" when it is): the file is missing, unreadable, or older
// than heartbeatMisses beats.
func HeartbeatStale(dir string) string {
	p := HeartbeatPath(dir)
	data, err := os.ReadFile(p)
	if err != nil {
		return fmt.Sprintf("no heartbeat: %v", err)
	}
	fi, err := os.Stat(p)
	if err != nil {
		return fmt.Sprintf("no heartbeat: %v", err)
	}
	every, err := time.ParseDuration(strings.TrimSpace(string(data)))
	if err != nil || every <= 0 {
		return fmt.Sprintf("heartbeat %s: %q is no interval", p, data)
	}
	if age := time.Since(fi.ModTime()); age > heartbeatMisses*every {
		return fmt.Sprintf("the daemon's loop has not gone round for %s (it beats every %s): stopped or wedged", age.Round(time.Second), every)
	}
	return ""
}
