package daemon

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/integrityd/integrityd/internal/state"
)

// notifySocket is a fake $NOTIFY_SOCKET that records every message.
type notifySocket struct {
	mu   sync.Mutex
	msgs []string
}

func listenNotify(t *testing.T) *notifySocket {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	t.Setenv("NOTIFY_SOCKET", path)
	n := &notifySocket{}
	go func() {
		buf := make([]byte, 4096)
		for {
			k, err := conn.Read(buf)
			if err != nil {
				return
			}
			n.mu.Lock()
			n.msgs = append(n.msgs, string(buf[:k]))
			n.mu.Unlock()
		}
	}()
	return n
}

// waitFor returns the index of the first message from index from on that
// contains all of parts.
func (n *notifySocket) waitFor(t *testing.T, from int, parts ...string) int {
	t.Helper()
	deadline := time.Now().Add(hangGuard)
	for time.Now().Before(deadline) {
		n.mu.Lock()
		for i := from; i < len(n.msgs); i++ {
			ok := true
			for _, p := range parts {
				ok = ok && strings.Contains(n.msgs[i], p)
			}
			if ok {
				n.mu.Unlock()
				return i
			}
		}
		n.mu.Unlock()
		time.Sleep(10 * time.Millisecond)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	t.Fatalf("no notification with %q after #%d; got %q", parts, from, n.msgs)
	return 0
}

func TestNotify(t *testing.T) {
	n := listenNotify(t)
	root, files := stormTree(t, 3000)
	cfg := testConfig(root, t.TempDir())
	cfg.Watchdog = 100 * time.Millisecond
	r := start(t, cfg)

	ready := n.waitFor(t, 0, "READY=1", "STATUS=watching 3,0", "files in 3 scopes; 0 findings")
	n.waitFor(t, ready, "WATCHDOG=1")
	// A finding changes the status line.
	if err := appendTo(files[0], "x"); err != nil {
		t.Fatal(err)
	}
	n.waitFor(t, ready, "STATUS=", "; 1 findings")
	// systemctl reload: RELOADING=1 with MONOTONIC_USEC, then READY=1.
	mark := len(n.msgs)
	if err := r.d.Rescan(context.Background()); err != nil {
		t.Fatal(err)
	}
	rel := n.waitFor(t, mark, "RELOADING=1", "MONOTONIC_USEC=")
	n.waitFor(t, rel+1, "READY=1")
	r.stop()
	n.waitFor(t, rel, "STOPPING=1")
}

// The initial scan extends the start timeout while it makes progress.
func TestNotifyExtendTimeout(t *testing.T) {
	n := listenNotify(t)
	root, _ := stormTree(t, 10000)
	cfg := testConfig(root, t.TempDir())
	cfg.Watchdog = 20 * time.Millisecond // pulses every 10 ms
	start(t, cfg)
	ready := n.waitFor(t, 0, "READY=1")
	n.mu.Lock()
	before := strings.Join(n.msgs[:ready], "|")
	n.mu.Unlock()
	if !strings.Contains(before, "EXTEND_TIMEOUT_USEC=") || !strings.Contains(before, "STATUS=initial scan:") {
		t.Fatalf("no EXTEND_TIMEOUT_USEC during an initial scan of 10,000 files (pulses every 10 ms): %q", before)
	}
}

func appendTo(path, s string) error {
	f, err := openAppend(path)
	if err != nil {
		return err
	}
	_, err = f.WriteString(s)
	f.Close()
	return err
}

// The heartbeat file (state.HeartbeatStale, what status --health reads)
// follows the loop: fresh while it goes round, stale while it does not
// (wedged in a batch), fresh again once it goes on.
func TestHeartbeat(t *testing.T) {
	t.Parallel()
	root := demoTree(t)
	stateDir := t.TempDir()
	cfg := testConfig(root, stateDir)
	cfg.Heartbeat = 50 * time.Millisecond
	d, err := New(cfg, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	enableSync(d)
	wedge := filepath.Join(stateDir, "wedge")
	release := make(chan struct{})
	handle := d.onBatch
	d.onBatch = func(paths []string) {
		if slices.Contains(paths, wedge) {
			<-release
		}
		handle(paths)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, nil) }()
	var once sync.Once
	unwedge := func() { once.Do(func() { close(release) }) }
	defer func() { unwedge(); cancel(); <-done }() // also after a failure
	waitFor(t, "a fresh heartbeat once running", func() bool { return state.HeartbeatStale(stateDir) == "" })
	if err := os.WriteFile(wedge, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a stale heartbeat while the loop is wedged", func() bool {
		return strings.Contains(state.HeartbeatStale(stateDir), "has not gone round")
	})
	unwedge()
	waitFor(t, "a fresh heartbeat once the loop goes on", func() bool { return state.HeartbeatStale(stateDir) == "" })
}
