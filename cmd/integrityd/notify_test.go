package main

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/integrityd/integrityd/internal/demo"
)

// notifySocket is a fake $NOTIFY_SOCKET that records every message.
type notifySocket struct {
	mu   sync.Mutex
	msgs []string
}

// listenNotify makes one and sets $NOTIFY_SOCKET for the processes the
// test starts.
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
// has the line line, and the messages so far.
func (n *notifySocket) waitFor(t *testing.T, from int, line string) (int, []string) {
	t.Helper()
	for deadline := time.Now().Add(hangGuard); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		n.mu.Lock()
		msgs := slices.Clone(n.msgs)
		n.mu.Unlock()
		for i := from; i < len(msgs); i++ {
			if slices.Contains(strings.Split(msgs[i], "\n"), line) {
				return i, msgs
			}
		}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	t.Fatalf("no notification %q after #%d; got %q", line, from, n.msgs)
	return 0, nil
}

// A reload that starts the checks again in the same process (here: a new
// root) is a reload to systemd, RELOADING=1 then READY=1 once the new
// checks are ready, never STOPPING=1: after STOPPING=1 systemd holds the
// unit deactivating (systemctl reload: "not active, cannot reload") and
// kills it at TimeoutStopSec.
func TestReloadRestartNotify(t *testing.T) {
	n := listenNotify(t)
	var roots [2]string
	for i := range roots {
		roots[i] = filepath.Join(t.TempDir(), "nc")
		if err := demo.Build(context.Background(), roots[i]); err != nil {
			t.Fatal(err)
		}
	}
	stateDir := t.TempDir()
	conf := filepath.Join(t.TempDir(), "integrityd.conf")
	write := func(root string) {
		t.Helper()
		if err := os.WriteFile(conf, []byte("root = "+root+"\ntrust = "+filepath.Join(root, "resources/codesigning/root.crt")+"\nstate_dir = "+stateDir+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(roots[0])
	p := startProcArgs(t, "run", "--config", conf, "--log-format", "json")
	first, _ := n.waitFor(t, 0, "READY=1")
	write(roots[1])
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	ready, msgs := n.waitFor(t, first+1, "READY=1")
	reloading := -1
	for i, m := range msgs[first+1 : ready] {
		lines := strings.Split(m, "\n")
		if slices.Contains(lines, "STOPPING=1") {
			t.Errorf("STOPPING=1 during a reload: %q", msgs[first+1:ready+1])
		}
		if reloading < 0 && slices.Contains(lines, "RELOADING=1") {
			reloading = i
		}
	}
	if reloading < 0 {
		t.Errorf("no RELOADING=1 before the new checks' READY=1: %q", msgs[first+1:ready+1])
	}
	if e := p.entries(t, "SIGHUP: configuration reloaded; starting the checks again to apply root, apps_path"); len(e) != 1 {
		t.Errorf("the reload did not start the checks again on the new root: %v", e)
	}
	// A stop is still one.
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	n.waitFor(t, ready+1, "STOPPING=1")
}
