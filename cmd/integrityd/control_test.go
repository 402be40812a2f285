package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/integrityd/integrityd/internal/asnobody"
	"github.com/integrityd/integrityd/internal/state"
)

func TestControlSocketPath(t *testing.T) {
	for _, tt := range []struct{ setting, runtime, want string }{
		{"", "", ""},
		{"", "/run/integrityd", "/run/integrityd/control.sock"},
		{"", "/run/integrityd/a:/run/other", "/run/integrityd/a/control.sock"},
		{"none", "/run/integrityd", ""},
		{"/srv/c.sock", "/run/integrityd", "/srv/c.sock"},
	} {
		if got, err := controlSocketPath(tt.setting, tt.runtime); err != nil || got != tt.want {
			t.Errorf("controlSocketPath(%q, %q) = %q, %v; want %q", tt.setting, tt.runtime, got, err, tt.want)
		}
	}
}

// ask sends line on the socket and returns the answer.
func ask(t *testing.T, sock, line string) string {
	t.Helper()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(hangGuard))
	io.WriteString(c, line)
	answer, _ := io.ReadAll(c)
	return string(answer)
}

// The protocol: "rescan\n" queues a rescan and answers ok, anything else
// is an unknown command; requests made while a rescan runs coalesce into
// one more; a client that sends nothing is dropped after the timeout;
// more than controlMaxConns clients at once are turned away; stopping
// leaves no goroutine behind.
func TestControlServer(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "control.sock")
	// A stale socket from an earlier run is replaced.
	stale, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	stale.Close()
	before := runtime.NumGoroutine()
	ln, err := listenUnix("control socket", sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != socketMode {
		t.Fatalf("socket mode: %v %v", fi.Mode(), err)
	}
	var rescans atomic.Int32
	release := make(chan struct{})
	rescan := func(ctx context.Context) error {
		rescans.Add(1)
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil
	}
	core, logs := observer.New(zapcore.InfoLevel)
	stop := startControl(context.Background(), ln, rescan, nil, zap.New(core))
	stopped := false
	defer func() {
		if !stopped {
			stop()
		}
	}()

	if got := ask(t, sock, "rescan\n"); got != "ok\n" {
		t.Fatalf("rescan: %q", got)
	}
	for _, line := range []string{"reload\n", "rescan now\n", "RESCAN\n", strings.Repeat("x", 2*controlMaxLine), "\n"} {
		if got := ask(t, sock, line); got != "error: unknown command\n" {
			t.Errorf("%.20q: answer %q, want error: unknown command", line, got)
		}
	}
	// While the first rescan runs, five more requests make one more.
	for range 5 {
		if got := ask(t, sock, "rescan\n"); got != "ok\n" {
			t.Fatalf("rescan while one runs: %q", got)
		}
	}
	release <- struct{}{}
	release <- struct{}{}
	time.Sleep(100 * time.Millisecond)
	if n := rescans.Load(); n != 2 {
		t.Errorf("%d rescans for 1 request and 5 made during it, want 2", n)
	}

	// Clients that hold their connection without a line: controlMaxConns
	// of them are served (and time out), and controlRootConns more of
	// root or the daemon's user (this test is either); the next is turned
	// away at once.
	var idle []net.Conn
	for range controlMaxConns + controlRootConns {
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		idle = append(idle, c)
	}
	time.Sleep(100 * time.Millisecond)
	if got := ask(t, sock, "rescan\n"); got != "error: busy\n" {
		t.Errorf("client over the limit: %q, want error: busy", got)
	}
	// Turned away at once, not once a slot was free: the idle clients
	// are all still connected (not yet timed out) when it has its answer.
	for i, c := range idle {
		c.SetReadDeadline(time.Now().Add(time.Millisecond))
		if _, err := c.Read(make([]byte, 1)); !os.IsTimeout(err) {
			t.Errorf("idle client %d: %v once the client over the limit had its answer, want still connected: that client waited for a slot", i, err)
		}
	}
	var wg sync.WaitGroup
	for _, c := range idle {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			c.SetReadDeadline(time.Now().Add(3 * controlTimeout))
			n, err := bufio.NewReader(c).ReadString('\n')
			if err != io.EOF || n != "" {
				t.Errorf("idle client: %q %v, want the connection closed by the daemon", n, err)
			}
		}()
	}
	wg.Wait()
	if got := ask(t, sock, "rescan\n"); got != "ok\n" {
		t.Errorf("after the idle clients timed out: %q", got)
	}
	// Both are logged: the refusal and the timeouts (logged before the
	// daemon closes the connection), the first of each at once.
	if n := logs.FilterMessageSnippet("connections refused").Len(); n != 1 {
		t.Errorf("%d entries for the refused connection, want 1: %v", n, logs.All())
	}
	timedOut := logs.FilterMessageSnippet("no line within").All()
	if len(timedOut) != 1 || timedOut[0].ContextMap()["timed_out"] != int64(1) {
		t.Errorf("entries for the idle clients timed out: %v, want 1 (the first, the others within controlRefusedLogEvery)", timedOut)
	}

	// Stop with a client connected: it returns, and every goroutine ends.
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	time.Sleep(50 * time.Millisecond)
	done := make(chan struct{})
	go func() { stop(); close(done) }()
	select {
	case <-done:
		stopped = true
	case <-time.After(controlTimeout):
		t.Fatalf("stop waited %v (the client's timeout) for a connected client", controlTimeout)
	}
	if _, err := os.Lstat(sock); !os.IsNotExist(err) {
		t.Errorf("socket left after stop: %v", err)
	}
	deadline := time.Now().Add(hangGuard)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("%d goroutines after stop, %d before start", n, before)
	}
}

func TestListenUnixErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := listenUnix("metrics", filepath.Join(dir, "no", "m.sock")); err == nil || !strings.Contains(err.Error(), "directory "+filepath.Join(dir, "no")+" does not exist") {
		t.Errorf("missing directory: %v", err)
	}
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o644)
	if _, err := listenUnix("metrics", file); err == nil || !strings.Contains(err.Error(), "exists and is not a socket") {
		t.Errorf("a regular file: %v", err)
	}
	live := filepath.Join(dir, "live.sock")
	ln, err := listenUnix("metrics", live)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	if _, err := listenUnix("metrics", live); err == nil || !strings.Contains(err.Error(), "another process listens on it") {
		t.Errorf("a live socket: %v", err)
	}
}

func TestRequestRescanErrors(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "c.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		bufio.NewReader(c).ReadString('\n')
		io.WriteString(c, "error: unknown command\n")
	}()
	if err := requestRescan(context.Background(), sock); err == nil || !strings.Contains(err.Error(), "error: unknown command") {
		t.Errorf("refused: %v", err)
	}
}

// askRescan: a socket left by a daemon that died is no socket; the rescan
// goes by SIGHUP to the daemon's pid.
func TestAskRescanStaleSocket(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "control.sock")
	stale, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	stale.Close()
	if err := state.WriteControl(dir, sock); err != nil {
		t.Fatal(err)
	}
	// The child must die of SIGHUP whatever disposition this process
	// inherited (nohup, trap "" HUP: ignored, and an ignored signal stays
	// ignored across exec). While a signal is handled through
	// signal.Notify, the Go runtime resets it to the default in a forked
	// child before exec: the child starts with SIGHUP at SIG_DFL.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	child := exec.Command("sleep", "30")
	if err := child.Start(); err != nil {
		t.Skip("no sleep:", err)
	}
	defer child.Process.Kill()
	if err := askRescan(context.Background(), &daemonState{dir: dir, State: &state.State{PID: child.Process.Pid}}); err != nil {
		t.Fatalf("askRescan with a stale socket: %v", err)
	}
	err = child.Wait()
	if ws, ok := child.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGHUP {
		t.Errorf("the daemon's pid got no SIGHUP: %v", err)
	}
}

// Environment of TestControlPeerChild, run as uid/gid 65534 by
// TestControlPeers.
const (
	controlChildEnv     = "INTEGRITYD_CONTROL_CHILD" // what to do: ask, hold
	controlChildSockEnv = "INTEGRITYD_CONTROL_SOCK"
)

// TestControlPeers: a peer that is neither root nor the daemon's user
// (uid 65534) is refused accept-release, in the group of the socket (an
// operator, who may rescan) or not (the socket's mode let it in: the
// peer's credentials still decide); such peers holding every connection
// slot do not keep root out, and the refusal is logged.
func TestControlPeers(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the peers run as uid 65534")
	}
	dir := asnobody.Dir(t)
	sock := filepath.Join(dir, "control.sock")
	ln, err := listenUnix("control socket", sock)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(sock, 0, 65534); err != nil { // the operators' group
		t.Fatal(err)
	}
	old := controlLineTimeout
	controlLineTimeout = 10 * time.Minute // the held connections stay until the test lets them go
	var rescans, accepts atomic.Int32
	rescan := func(context.Context) error { rescans.Add(1); return nil }
	accept := func(_ context.Context, scopes []string, by string) ([]string, error) {
		accepts.Add(1)
		return scopes, nil
	}
	core, logs := observer.New(zapcore.InfoLevel)
	stop := startControl(context.Background(), ln, rescan, accept, zap.New(core))
	defer func() { stop(); controlLineTimeout = old }()
	env := func(mode string) []string {
		return []string{controlChildEnv + "=" + mode, controlChildSockEnv + "=" + sock}
	}

	// An operator: rescan yes, accept-release no.
	asnobody.Run(t, dir, "TestControlPeerChild", env("ask")...)
	// Not in the socket's group, let in by a mode too wide: the same.
	if err := os.Chown(sock, 0, 0); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(sock, 0o666); err != nil {
		t.Fatal(err)
	}
	asnobody.Run(t, dir, "TestControlPeerChild", env("ask")...)
	if n := accepts.Load(); n != 0 {
		t.Fatalf("accept-release from uid 65534 reached the daemon %d times", n)
	}
	refused := 0
	for _, e := range logs.FilterMessageSnippet("accept-release refused").All() {
		if e.ContextMap()["peer_uid"] == uint32(65534) {
			refused++
		}
	}
	if refused != 2 {
		t.Errorf("%d entries for accept-release refused to uid 65534, want 2", refused)
	}

	// Peers of uid 65534 hold every slot; root still gets in.
	cmd := asnobody.Command(t, dir, "TestControlPeerChild", env("hold")...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	held := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		ok := false
		for sc.Scan() {
			out.WriteString(sc.Text() + "\n")
			if sc.Text() == "held" && !ok {
				ok = true
				held <- true
			}
		}
		if !ok {
			held <- false
		}
	}()
	if !<-held {
		stdin.Close()
		cmd.Wait()
		t.Fatalf("the peers of uid 65534 did not hold the slots:\n%s", out.String())
	}
	for i := range 2 { // one after the other: the room for root is given back
		if got := ask(t, sock, "accept-release core\n"); got != "ok core\n" {
			t.Errorf("root's accept-release %d while uid 65534 holds every slot: %q, want ok core", i+1, got)
		}
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil || !strings.Contains(out.String(), "--- PASS: TestControlPeerChild") {
		t.Errorf("the peers of uid 65534: %v\n%s", err, out.String())
	}
	var busy []observer.LoggedEntry
	for _, e := range logs.FilterMessageSnippet("connections refused").All() {
		if e.ContextMap()["peer_uid"] == uint32(65534) {
			busy = append(busy, e)
		}
	}
	if len(busy) != 1 {
		t.Errorf("%d entries for the refused connection of uid 65534, want 1: %v", len(busy), logs.All())
	}
}

// TestControlPeerChild is the peers' side of TestControlPeers.
func TestControlPeerChild(t *testing.T) {
	mode, sock := os.Getenv(controlChildEnv), os.Getenv(controlChildSockEnv)
	if mode == "" {
		t.Skip("run by TestControlPeers as uid 65534")
	}
	switch mode {
	case "ask":
		if got := ask(t, sock, "rescan\n"); got != "ok\n" {
			t.Errorf("rescan as uid 65534: %q", got)
		}
		if got := ask(t, sock, "accept-release core\n"); got != "error: only root may accept a release\n" {
			t.Errorf("accept-release as uid 65534: %q, want it refused", got)
		}
	case "hold":
		// Every slot, then one more: turned away.
		var conns []net.Conn
		for range controlMaxConns {
			c, err := net.Dial("unix", sock)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			conns = append(conns, c)
		}
		if got := ask(t, sock, "rescan\n"); got != "error: busy\n" {
			t.Fatalf("a connection over the limit: %q, want error: busy", got)
		}
		// The held connections are still served (nothing read yet).
		for _, c := range conns {
			c.SetReadDeadline(time.Now().Add(time.Millisecond))
			if _, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("a held connection: %v, want it open", err)
			}
		}
		fmt.Println("held")
		io.Copy(io.Discard, os.Stdin) // until the parent closes it
	}
}
