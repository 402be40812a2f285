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
	if _, err := startMetrics(context.Background(), metricsOptions{listen: "unix:" + sock}, d, zap.NewNop()); err == nil || !strings.Contains(err.Error(), "another process listens") {
		t.Errorf("second listener on the socket: %v", err)
	}
	if _, err := startMetrics(context.Background(), metricsOptions{listen: "unix:metrics.sock"}, d, zap.NewNop()); err == nil || !strings.Contains(err.Error(), "want an absolute path") {
		t.Errorf("relative socket: %v", err)
	}
	missing := filepath.Join(t.TempDir(), "run", "integrityd")
	if _, err := startMetrics(context.Background(), metricsOptions{listen: "unix:" + missing + "/metrics.sock"}, d, zap.NewNop()); err == nil ||
		!strings.Contains(err.Error(), "directory "+missing+" does not exist") || !strings.Contains(err.Error(), "RuntimeDirectory=integrityd") {
		t.Errorf("socket in a missing directory: %v", err)
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
	missing := filepath.Join(dir, "no", "integrityd.prom")
	if _, err := startMetrics(context.Background(), metricsOptions{textfile: missing, interval: time.Hour}, d, zap.NewNop()); err == nil ||
		!strings.Contains(err.Error(), "directory "+filepath.Dir(missing)+" does not exist") {
		t.Errorf("textfile in a missing directory: %v", err)
	}
}

// A read-only textfile directory (ProtectSystem=strict without
// ReadWritePaths=) is an error at start that names it and the fix.
func TestMetricsTextfileReadOnly(t *testing.T) { mountns.Run(t, "TestMetricsTextfileReadOnlyChild") }

func TestMetricsTextfileReadOnlyChild(t *testing.T) {
	mountns.Enter(t, "TestMetricsTextfileReadOnly")
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "ro", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount a read-only tmpfs: %v %s", err, out)
	}
	defer exec.Command("umount", dir).Run()
	d := newTestDaemon(t)
	_, err := startMetrics(context.Background(), metricsOptions{textfile: filepath.Join(dir, "integrityd.prom"), interval: time.Hour}, d, zap.NewNop())
	if err == nil || !strings.Contains(err.Error(), "directory "+dir+" is read-only") || !strings.Contains(err.Error(), "ReadWritePaths="+dir) {
		t.Errorf("read-only directory: %v", err)
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
