package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/integrityd/integrityd/internal/state"
)

// The control socket lets operators who may not signal the daemon (the
// members of its group) ask for a full rescan. The protocol is one line:
// "rescan\n" queues a full rescan, as SIGHUP does but without reloading
// the configuration (a reload stays with root: systemctl reload), and the
// daemon answers "ok\n"; "accept-release SCOPE...\n", from root (or the
// daemon's own user) only, takes those scopes' older releases in and is
// answered "ok SCOPE...\n" or "error: WHY\n"; any other line gets
// "error: unknown command\n". Then the daemon closes the connection. The
// caller of a rescan waits for its result in the state, as after SIGHUP.
//
// Whoever may connect (the group's operators) could hold every
// connection slot to keep root out: controlRootConns more are kept for
// root and the daemon's own user, every connection has controlTimeout to
// send its line, and refusals are logged (at most one entry every
// controlRefusedLogEvery, with the count).
const (
	socketMode             = 0o660            // the service's user and group
	controlMaxConns        = 8                // connections served at once; more get "error: busy"
	controlRootConns       = 2                // more, for root and the daemon's user only
	controlRefusedLogEvery = 10 * time.Second // between two entries about refused connections
	controlTimeout         = 5 * time.Second  // to send the line and read the answer
	controlMaxLine         = 1024             // bytes of a command line, newline included
	acceptTimeout          = 30 * time.Second // for the loop to take an accept-release
	controlDefaultName     = "control.sock"   // in $RUNTIME_DIRECTORY
)

// controlLineTimeout is controlTimeout on the daemon's side: how long a
// connection may take to send its line (changeable for tests).
var controlLineTimeout = controlTimeout

// controlSocketPath is the socket that setting (--control-socket)
// names: the setting, else control.sock in systemd's RUNTIME_DIRECTORY
// (its first entry), else none ("").
func controlSocketPath(setting, runtimeDir string) (string, error) {
	switch setting {
	case "none":
		return "", nil
	case "":
		dir, _, _ := strings.Cut(runtimeDir, ":")
		if dir == "" {
			return "", nil
		}
		setting = filepath.Join(dir, controlDefaultName)
	}
	return filepath.Abs(setting)
}

// listenUnix listens on a unix socket at path for what (a purpose, for
// errors), with mode socketMode. A socket left by an earlier run (nobody
// answers on it) is removed; a live one or another file is an error.
func listenUnix(what, path string) (net.Listener, error) {
	dir := filepath.Dir(path)
	if fi, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: listen on unix socket %s: directory %s does not exist (the packaged unit has RuntimeDirectory=integrityd for /run/integrityd)", what, path, dir)
	} else if err == nil && !fi.IsDir() {
		return nil, fmt.Errorf("%s: listen on unix socket %s: %s is not a directory", what, path, dir)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&fs.ModeSocket == 0 {
			return nil, fmt.Errorf("%s: listen on unix socket %s: the path exists and is not a socket", what, path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("%s: listen on unix socket %s: another process listens on it", what, path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("%s: remove stale socket %s: %w", what, path, err)
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("%s: listen on unix socket %s: %w", what, path, err)
	}
	if err := os.Chmod(path, socketMode); err != nil {
		ln.Close()
		return nil, fmt.Errorf("%s: chmod socket %s: %w", what, path, err)
	}
	return ln, nil
}

// acceptFunc takes the current releases of scopes in (Daemon.AcceptReleases).
type acceptFunc func(ctx context.Context, scopes []string, by string) ([]string, error)

// controlServer serves the control socket.
type controlServer struct {
	ctx      context.Context
	ln       net.Listener
	log      *zap.Logger
	accept   acceptFunc    // nil: accept-release is unknown
	pending  chan struct{} // a rescan is queued (capacity 1: requests coalesce)
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    map[net.Conn]bool
	closed   bool
	refused  logEvery // connections turned away ("error: busy")
	timedOut logEvery // connections that sent no line in time
}

// logEvery counts events logged at most once every
// controlRefusedLogEvery: the first, then the count of those since.
type logEvery struct {
	mu   sync.Mutex
	n    int
	last time.Time
}

// note counts one event and returns how many to log now (0: none yet).
func (l *logEvery) note() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.n++
	now := time.Now()
	if !l.last.IsZero() && now.Sub(l.last) < controlRefusedLogEvery {
		return 0
	}
	n := l.n
	l.n, l.last = 0, now
	return n
}

// startControl serves the control socket ln: rescan requests are passed
// to rescan (which blocks until the rescan is done) one at a time, and
// coalesce while one runs. The returned function stops it and waits for
// every goroutine it started.
func startControl(ctx context.Context, ln net.Listener, rescan func(context.Context) error, accept acceptFunc, log *zap.Logger) func() {
	ctx, cancel := context.WithCancel(ctx)
	s := &controlServer{ctx: ctx, ln: ln, log: log, accept: accept, pending: make(chan struct{}, 1), conns: map[net.Conn]bool{}}
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case <-s.pending:
				if err := rescan(ctx); err != nil && ctx.Err() == nil {
					log.Error("rescan requested on the control socket failed", zap.Error(err))
				}
			}
		}
	}()
	go func() {
		defer s.wg.Done()
		s.acceptConns()
	}()
	return func() {
		cancel()
		s.mu.Lock()
		s.closed = true
		for c := range s.conns {
			c.SetDeadline(time.Now()) // wakes its handler
		}
		s.mu.Unlock()
		ln.Close()
		s.wg.Wait()
	}
}

func (s *controlServer) acceptConns() {
	sem := make(chan struct{}, controlMaxConns)
	reserved := make(chan struct{}, controlRootConns)
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			s.log.Warn("control socket: accept failed", zap.Error(err))
			time.Sleep(100 * time.Millisecond) // EMFILE and the like: do not spin
			continue
		}
		cred := peerCred(c)
		var slot chan struct{}
		select {
		case sem <- struct{}{}:
			slot = sem
		default:
			if privileged(cred) {
				select {
				case reserved <- struct{}{}:
					slot = reserved
				default:
				}
			}
		}
		if slot == nil {
			s.refuse(c, cred)
			continue
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = true
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			s.serve(c)
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
			<-slot // before the close: a client that saw the end may connect again
			c.Close()
		}()
	}
}

// refuse turns c away ("error: busy") and logs it: the first refusal,
// then at most one entry every controlRefusedLogEvery with the count.
func (s *controlServer) refuse(c net.Conn, cred *unix.Ucred) {
	c.SetDeadline(time.Now().Add(time.Second))
	io.WriteString(c, "error: busy\n")
	c.Close()
	if n := s.refused.note(); n > 0 {
		s.log.Warn(fmt.Sprintf("control socket: %d connections refused, %d at once are served (and %d more for root)", n, controlMaxConns, controlRootConns),
			append(credFields(cred), zap.Int("refused", n))...)
	}
}

// serve answers one connection: one line, one answer (its caller closes
// it).
func (s *controlServer) serve(c net.Conn) {
	c.SetDeadline(time.Now().Add(controlLineTimeout))
	// A line cut by the limit or by the client's end of writing is
	// answered; a timeout or a reset is not.
	line, err := bufio.NewReaderSize(io.LimitReader(c, controlMaxLine), controlMaxLine).ReadString('\n')
	if errors.Is(err, os.ErrDeadlineExceeded) && s.ctx.Err() == nil {
		if n := s.timedOut.note(); n > 0 {
			s.log.Warn(fmt.Sprintf("control socket: %d connections closed, no line within %v", n, controlLineTimeout),
				append(peer(c), zap.Int("timed_out", n))...)
		}
	}
	if (err != nil && !errors.Is(err, io.EOF)) || line == "" {
		return
	}
	line = strings.TrimSuffix(line, "\n")
	if rest, ok := strings.CutPrefix(line, "accept-release "); ok && s.accept != nil {
		io.WriteString(c, s.acceptRelease(c, strings.Fields(rest)))
		return
	}
	switch line {
	case "rescan":
		select {
		case s.pending <- struct{}{}:
		default: // one is queued already: it covers this request
		}
		s.log.Info("full rescan requested on the control socket", peer(c)...)
		io.WriteString(c, "ok\n")
	default:
		io.WriteString(c, "error: unknown command\n")
	}
}

// acceptRelease answers an accept-release of scopes from c: only root or
// the daemon's own user may take an older release in (the group's
// operators may only rescan).
func (s *controlServer) acceptRelease(c net.Conn, scopes []string) string {
	cred := peerCred(c)
	if !privileged(cred) {
		s.log.Warn("accept-release refused on the control socket: not root", peer(c)...)
		return "error: only root may accept a release\n"
	}
	if len(scopes) == 0 {
		return "error: accept-release needs a scope\n"
	}
	ctx, cancel := context.WithTimeout(s.ctx, acceptTimeout)
	defer cancel()
	c.SetDeadline(time.Now().Add(acceptTimeout + controlTimeout))
	done, err := s.accept(ctx, scopes, fmt.Sprintf("uid %d, pid %d", cred.Uid, cred.Pid))
	if err != nil {
		return "error: " + strings.ReplaceAll(err.Error(), "\n", " ") + "\n"
	}
	return "ok " + strings.Join(done, " ") + "\n"
}

// privileged reports whether the peer cred is root or the daemon's own
// user (nil, unknown, is not).
func privileged(cred *unix.Ucred) bool {
	return cred != nil && (cred.Uid == 0 || int(cred.Uid) == os.Geteuid())
}

// peerCred is the process at the other end of c (nil when unknown).
func peerCred(c net.Conn) *unix.Ucred {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return nil
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return nil
	}
	var cred *unix.Ucred
	raw.Control(func(fd uintptr) { cred, _ = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED) })
	return cred
}

// peer names the process at the other end of c, for the log.
func peer(c net.Conn) []zap.Field { return credFields(peerCred(c)) }

// credFields names the process cred, for the log.
func credFields(cred *unix.Ucred) []zap.Field {
	if cred == nil {
		return nil
	}
	return []zap.Field{zap.Int32("peer_pid", cred.Pid), zap.Uint32("peer_uid", cred.Uid)}
}

// requestRescan asks the daemon on the control socket sock for a full
// rescan.
func requestRescan(ctx context.Context, sock string) error {
	_, err := controlCall(ctx, sock, "rescan", controlTimeout)
	return err
}

// errNoSocket says the daemon of a state directory listens on no control
// socket: none is recorded, or the one recorded was left by a daemon that
// died.
var errNoSocket = errors.New("no control socket")

// callDaemon sends line on the control socket recorded in stateDir
// (controlCall) and returns the socket and the answer.
func callDaemon(ctx context.Context, stateDir, line string, timeout time.Duration) (sock, answer string, err error) {
	sock, err = state.ReadControl(stateDir)
	switch {
	case errors.Is(err, fs.ErrPermission):
		return "", "", permissionDenied("reading", filepath.Join(stateDir, state.ControlName))
	case err != nil:
		return "", "", err
	case sock == "":
		return "", "", errNoSocket
	}
	answer, err = controlCall(ctx, sock, line, timeout)
	if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, fs.ErrNotExist) {
		return sock, "", errNoSocket
	}
	return sock, answer, err
}

// controlCall sends line to the daemon on the control socket sock and
// returns what follows "ok" in its answer; "error: ..." is an error.
func controlCall(ctx context.Context, sock, line string, timeout time.Duration) (string, error) {
	var d net.Dialer
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c, err := d.DialContext(ctx, "unix", sock)
	if err != nil {
		return "", err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		return "", fmt.Errorf("control socket %s: %w", sock, err)
	}
	answer, err := bufio.NewReaderSize(io.LimitReader(c, controlMaxLine), controlMaxLine).ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("control socket %s: no answer: %w", sock, err)
	}
	answer = strings.TrimSpace(answer)
	if rest, ok := strings.CutPrefix(answer, "ok"); ok && (rest == "" || rest[0] == ' ') {
		return strings.TrimSpace(rest), nil
	}
	return "", &refusedError{sock, strings.TrimPrefix(answer, "error: ")}
}

// refusedError is the daemon's "error: ..." answer on its control socket.
type refusedError struct{ sock, why string }

func (e *refusedError) Error() string {
	return fmt.Sprintf("control socket %s: error: %s", e.sock, e.why)
}
