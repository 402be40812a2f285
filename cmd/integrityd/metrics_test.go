package main

import (
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/integrityd/integrityd/internal/daemon"
	"github.com/integrityd/integrityd/internal/mountns"
)

func newTestDaemon(t *testing.T) *daemon.Daemon {
	t.Helper()
	root := demoRoot(t)
	d, err := daemon.New(daemon.Config{Root: root, Trust: filepath.Join(root, "resources/codesigning/root.crt"), StateDir: t.TempDir()}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// The metrics socket as the unit has it: in RuntimeDirectory, mode 0660,
// a stale one from a killed run replaced; scraped as curl --unix-socket
// does.
func TestMetricsUnixSocket(t *testing.T) {
	d := newTestDaemon(t)
	sock := filepath.Join(t.TempDir(), "metrics.sock")
	stale, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	stale.Close()
	stop, err := startMetrics(context.Background(), metricsOptions{listen: "unix:" + sock, interval: time.Hour}, d, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != socketMode {
		t.Fatalf("socket mode %v (%v), want %04o", fi.Mode(), err, socketMode)
	}
	client := http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}}}
	resp, err := client.Get("http://localhost/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.LegacyValidation)
	mfs, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil || resp.StatusCode != 200 || len(mfs) == 0 {
		t.Fatalf("scrape: %d, %d families, %v", resp.StatusCode, len(mfs), err)
	}
	// An endpoint that cannot start is an error entry (and a retry), not
	// an error that stops the daemon.
	failing := func(listen string, want ...string) {
		t.Helper()
		core, logs := observer.New(zapcore.InfoLevel)
		stop, err := startMetrics(context.Background(), metricsOptions{listen: listen}, d, zap.New(core))
		if err != nil {
			t.Errorf("%s: %v, want an error entry and a retry", listen, err)
			return
		}
		defer stop()
		es := logs.FilterLevelExact(zapcore.ErrorLevel).FilterMessageSnippet("metrics endpoint cannot start").All()
		if len(es) != 1 {
			t.Errorf("%s: %d error entries, want 1: %v", listen, len(es), logs.All())
			return
		}
		for _, w := range want {
			if !strings.Contains(es[0].Message, w) {
				t.Errorf("%s: %q does not say %q", listen, es[0].Message, w)
			}
		}
	}
	failing("unix:"+sock, "another process listens")
	missing := filepath.Join(t.TempDir(), "run", "integrityd")
	failing("unix:"+missing+"/metrics.sock", "directory "+missing+" does not exist", "RuntimeDirectory=integrityd")
	// A setting that can never work is still an error.
	if _, err := startMetrics(context.Background(), metricsOptions{listen: "unix:metrics.sock"}, d, zap.NewNop()); err == nil || !strings.Contains(err.Error(), "want an absolute path") {
		t.Errorf("relative socket: %v", err)
	}
}

// TestMetricsListenRetry: a metrics endpoint that cannot start (its port
// taken) is an error entry, then tried again until it works, while the
// daemon goes on (issue 22: TCP metrics without the network drop-in made
// the daemon exit 78 and stop checking).
func TestMetricsListenRetry(t *testing.T) {
	old, oldMax := metricsRetry, metricsRetryMax
	metricsRetry, metricsRetryMax = 10*time.Millisecond, 40*time.Millisecond
	defer func() { metricsRetry, metricsRetryMax = old, oldMax }()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := taken.Addr().String()
	core, logs := observer.New(zapcore.InfoLevel)
	d := newTestDaemon(t)
	stop, err := startMetrics(context.Background(), metricsOptions{listen: addr}, d, zap.New(core))
	if err != nil {
		taken.Close()
		t.Fatalf("a taken port: %v, want an error entry and a retry", err)
	}
	defer stop()
	deadline := time.Now().Add(hangGuard)
	for len(logs.FilterMessageSnippet("metrics endpoint cannot start").All()) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("no retry after %v: %v", hangGuard, logs.All())
		}
		time.Sleep(5 * time.Millisecond)
	}
	taken.Close()
	client := http.Client{Timeout: 10 * time.Second}
	for {
		resp, err := client.Get("http://" + addr + "/metrics")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("scrape: %d", resp.StatusCode)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the endpoint never started once the port was free: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(logs.FilterMessageSnippet("metrics endpoint started after all").All()) != 1 {
		t.Errorf("no entry saying the endpoint started after all: %v", logs.All())
	}
}

// The textfile is written at start (an error then stops the daemon,
// naming the directory), atomically, 0644, and with no temporary file
// left.
func TestMetricsTextfile(t *testing.T) {
	d := newTestDaemon(t)
	dir := t.TempDir()
	prom := filepath.Join(dir, "integrityd.prom")
	stop, err := startMetrics(context.Background(), metricsOptions{textfile: prom, interval: time.Hour}, d, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(prom)
	if err != nil || fi.Mode().Perm() != 0o644 {
		t.Fatalf("textfile at start: %v %v", fi, err)
	}
	stop()
	f, _ := os.Open(prom)
	defer f.Close()
	parser := expfmt.NewTextParser(model.LegacyValidation)
	if mfs, err := parser.TextToMetricFamilies(f); err != nil || len(mfs) == 0 {
		t.Errorf("textfile: %d families, %v", len(mfs), err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("files in the textfile directory: %v", ents)
	}
	// A missing directory: an error entry naming it, and a retry at each
	// interval that writes the file once the directory is there.
	missing := filepath.Join(dir, "no", "integrityd.prom")
	core, logs := observer.New(zapcore.InfoLevel)
	stop, err = startMetrics(context.Background(), metricsOptions{textfile: missing, interval: 10 * time.Millisecond}, d, zap.New(core))
	if err != nil {
		t.Fatalf("textfile in a missing directory: %v, want an error entry and a retry", err)
	}
	defer stop()
	if es := logs.FilterLevelExact(zapcore.ErrorLevel).All(); len(es) != 1 || !strings.Contains(es[0].Message, "directory "+filepath.Dir(missing)+" does not exist") {
		t.Errorf("textfile in a missing directory: %v", es)
	}
	if err := os.Mkdir(filepath.Dir(missing), 0o755); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(hangGuard)
	for len(logs.FilterMessage("metrics textfile written again").All()) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the textfile was not written once its directory existed: %v", logs.All())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := os.Stat(missing); err != nil {
		t.Error(err)
	}
}

// A read-only textfile directory (ProtectSystem=strict without
// ReadWritePaths=) is an error entry at start that names it and the fix;
// the daemon goes on and tries again.
func TestMetricsTextfileReadOnly(t *testing.T) { mountns.Run(t, "TestMetricsTextfileReadOnlyChild") }

func TestMetricsTextfileReadOnlyChild(t *testing.T) {
	mountns.Enter(t, "TestMetricsTextfileReadOnly")
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "ro", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount a read-only tmpfs: %v %s", err, out)
	}
	defer exec.Command("umount", dir).Run()
	d := newTestDaemon(t)
	core, logs := observer.New(zapcore.InfoLevel)
	stop, err := startMetrics(context.Background(), metricsOptions{textfile: filepath.Join(dir, "integrityd.prom"), interval: time.Hour}, d, zap.New(core))
	if err != nil {
		t.Fatalf("read-only directory: %v, want an error entry and a retry", err)
	}
	stop()
	// One error entry (the stop's last write fails the same way: no second).
	es := logs.FilterLevelExact(zapcore.ErrorLevel).All()
	if len(es) != 1 || !strings.Contains(es[0].Message, "directory "+dir+" is read-only") || !strings.Contains(es[0].Message, "ReadWritePaths="+dir) {
		t.Errorf("read-only directory: %v", es)
	}
	c, err := checkWritableDir(dir)
	if err == nil || !strings.Contains(err.Error(), "read-only file system") {
		t.Errorf("checkWritableDir on a read-only directory: %+v %v", c, err)
	}
}

// TCP metrics in a network namespace with only lo (PrivateNetwork=yes):
// a failure says what to do, and so does a warning when the listen works
// but nobody outside can connect.
func TestMetricsPrivateNetwork(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("not root: the test runs in a network namespace of its own (unshare --net)")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skipf("no unshare (util-linux): %v", err)
	}
	mountns.Rerun(t, "in a network namespace (unshare --net)", []string{"unshare", "--net"}, []string{"INTEGRITYD_TEST_NETNS=1"}, "TestMetricsPrivateNetworkChild")
}

func TestMetricsPrivateNetworkChild(t *testing.T) {
	if os.Getenv("INTEGRITYD_TEST_NETNS") == "" {
		t.Skip("run by TestMetricsPrivateNetwork in a network namespace")
	}
	if !onlyLoopback() {
		t.Fatal("onlyLoopback is false in a new network namespace")
	}
	core, logs := observer.New(zapcore.InfoLevel)
	if out, err := exec.Command("ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Logf("cannot bring lo up (%v %s)", err, out)
	}
	ln, err := listenMetrics("127.0.0.1:0", zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// A listen that fails (here: the port is taken) says what to do.
	if _, err := listenMetrics(ln.Addr().String(), zap.New(core)); err == nil || !strings.Contains(err.Error(), "PrivateNetwork=yes") ||
		!strings.Contains(err.Error(), "unix:/run/integrityd/metrics.sock") || !strings.Contains(err.Error(), "PrivateNetwork=no") {
		t.Errorf("failed listen in a private network: %v", err)
	}
	if n := len(logs.FilterMessageSnippet("PrivateNetwork=yes").All()); n != 1 {
		t.Errorf("%d warnings about the private network, want 1", n)
	}
}
