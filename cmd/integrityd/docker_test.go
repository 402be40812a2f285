package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/integrityd/integrityd/internal/config"
)

// dockerfile is packaging/docker/Dockerfile, one instruction per entry
// (continuations joined, comments dropped), split into its stages.
type dockerfile struct {
	stages [][]string // each starts with its FROM
}

func readDockerfile(t *testing.T, path string) dockerfile {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var df dockerfile
	var cur string
	sc := bufio.NewScanner(strings.NewReader(string(data)))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(strings.TrimSpace(line), "#") || strings.TrimSpace(line) == "" {
			continue
		}
		if strings.HasSuffix(line, `\`) {
			cur += strings.TrimSuffix(line, `\`)
			continue
		}
		ins := strings.TrimSpace(cur + line)
		cur = ""
		if strings.HasPrefix(ins, "FROM ") {
			df.stages = append(df.stages, nil)
		}
		if len(df.stages) == 0 {
			t.Fatalf("%s: %q before the first FROM", path, ins)
		}
		df.stages[len(df.stages)-1] = append(df.stages[len(df.stages)-1], ins)
	}
	return df
}

// args are a stage's ARG defaults.
func stageArgs(stage []string) map[string]string {
	m := map[string]string{}
	for _, ins := range stage {
		if k, v, ok := strings.Cut(strings.TrimPrefix(ins, "ARG "), "="); ok && strings.HasPrefix(ins, "ARG ") {
			m[k] = v
		}
	}
	return m
}

func expand(s string, args map[string]string) string {
	return os.Expand(s, func(k string) string { return args[k] })
}

// TestDockerImageLayout lays out the image's filesystem as
// packaging/docker/Dockerfile does, without a Docker daemon: the build
// stage's RUN of packaging/docker/rootfs.sh (with the ARG defaults), then
// each COPY --from=build of the final stage with Docker's rules (a
// directory's contents are copied with their owner and mode; a missing
// destination directory is created root:root 0755). It checks each path's
// owner and mode against the image's USER: the daemon must be able to take
// /state/lock (issue 22: /state was root:root 0755 and the container
// restarted for ever), the web server's uid must not be the daemon's, and
// every command must find /state and the control socket by default.
func TestDockerImageLayout(t *testing.T) {
	if _, err := exec.LookPath("install"); err != nil {
		t.Skip("no install(1)")
	}
	wrap := []string{}
	if os.Geteuid() != 0 {
		fr, err := exec.LookPath("fakeroot")
		if err != nil {
			t.Skip("needs root or fakeroot to give files an owner")
		}
		wrap = []string{fr, "--"}
	}
	df := readDockerfile(t, "../../packaging/docker/Dockerfile")
	if len(df.stages) != 2 {
		t.Fatalf("want two stages, got %d", len(df.stages))
	}
	build, final := df.stages[0], df.stages[1]
	bargs, fargs := stageArgs(build), stageArgs(final)
	for _, k := range []string{"UID", "GID"} {
		if bargs[k] == "" || bargs[k] != fargs[k] {
			t.Fatalf("ARG %s: build stage %q, final stage %q (must be the same)", k, bargs[k], fargs[k])
		}
	}
	uid, gid := bargs["UID"], bargs["GID"]

	top := t.TempDir()
	out := filepath.Join(top, "out") // the build stage's /out
	img := filepath.Join(top, "img") // the final image's /
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(out, "integrityd")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	var script []string
	runRe := regexp.MustCompile(`^RUN \./packaging/docker/rootfs\.sh (\S+) (\S+) (\S+)$`)
	ran := false
	for _, ins := range build {
		m := runRe.FindStringSubmatch(ins)
		if m == nil {
			continue
		}
		dst := expand(strings.Trim(m[1], `"`), bargs)
		if !strings.HasPrefix(dst, "/out/") {
			t.Fatalf("%s: want a tree under /out", ins)
		}
		script = append(script, fmt.Sprintf("BIN=%q ../../packaging/docker/rootfs.sh %q %q %q",
			bin, filepath.Join(out, strings.TrimPrefix(dst, "/out/")), expand(strings.Trim(m[2], `"`), bargs), expand(strings.Trim(m[3], `"`), bargs)))
		ran = true
	}
	if !ran {
		t.Fatal("the build stage does not lay out the image with RUN ./packaging/docker/rootfs.sh OUT UID GID")
	}
	script = append(script, fmt.Sprintf("install -d -m 0755 -o 0 -g 0 %q", img))
	for _, ins := range final {
		f := strings.Fields(ins)
		if f[0] != "COPY" {
			continue
		}
		if len(f) != 4 || f[1] != "--from=build" {
			t.Fatalf("%s: want COPY --from=build SRC DST (no --chown: it would give the binary to the daemon's uid)", ins)
		}
		src, dst := filepath.Clean(f[2]), filepath.Join(img, f[3])
		if !strings.HasPrefix(src, "/out/") {
			t.Fatalf("%s: not from /out", ins)
		}
		src = filepath.Join(out, strings.TrimPrefix(src, "/out/"))
		// Docker: a directory's contents go into DST (created root:root
		// 0755 when missing), each with its owner and mode; a file keeps
		// its owner and mode.
		script = append(script, fmt.Sprintf("if [ -d %[1]q ]; then [ -d %[2]q ] || install -d -m 0755 -o 0 -g 0 %[2]q; cp -a %[1]q/. %[2]q; else cp -a %[1]q %[2]q; fi", src, dst))
	}
	script = append(script, fmt.Sprintf("cd %q && find . -printf '%%p %%U %%G %%m %%y\\n'", img))
	argv := append(wrap, "sh", "-ec", strings.Join(script, "\n"))
	cmd := exec.Command(argv[0], argv[1:]...)
	listing, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("laying out the image: %v\n%s", err, stderr)
	}
	type entry struct{ uid, gid, mode, typ string }
	got := map[string]entry{}
	for _, l := range strings.Split(strings.TrimSpace(string(listing)), "\n") {
		f := strings.Fields(l)
		if len(f) != 5 {
			t.Fatalf("find: %q", l)
		}
		p := "/" + strings.TrimPrefix(strings.TrimPrefix(f[0], "."), "/")
		got[p] = entry{f[1], f[2], f[3], f[4]}
	}

	// USER: numeric (an empty image has no /etc/passwd), not root, not the
	// web server's uid.
	user := ""
	for _, ins := range final {
		if strings.HasPrefix(ins, "USER ") {
			user = expand(strings.TrimPrefix(ins, "USER "), fargs)
		}
	}
	if user != uid+":"+gid {
		t.Fatalf("USER %q, want %s:%s (the ARGs the tree was laid out with)", user, uid, gid)
	}
	if n, err := strconv.Atoi(uid); err != nil || n == 0 || n == 33 || n == 82 {
		t.Errorf("UID %s: want a numeric uid of its own, neither root nor the web server's (33, or 82 in -alpine): a web server process must not be able to signal the daemon or write its state", uid)
	}

	want := map[string]entry{
		"/":                               {"0", "0", "755", "d"},
		"/integrityd":                     {"0", "0", "755", "f"},
		"/etc":                            {"0", "0", "755", "d"},
		"/etc/integrityd":                 {"0", "0", "755", "d"},
		"/etc/integrityd/integrityd.conf": {"0", "0", "644", "f"},
		"/state":                          {uid, gid, "700", "d"},
	}
	for p, w := range want {
		if g, ok := got[p]; !ok {
			t.Errorf("%s: not in the image", p)
		} else if g != w {
			t.Errorf("%s: uid %s gid %s mode %s type %s, want uid %s gid %s mode %s type %s", p, g.uid, g.gid, g.mode, g.typ, w.uid, w.gid, w.mode, w.typ)
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("%s: in the image but not checked here", p)
		}
	}

	// The configuration every command reads by default: the state and the
	// control socket in /state, a volume the daemon's uid owns.
	data, err := os.ReadFile("../../packaging/docker/integrityd.conf")
	if err != nil {
		t.Fatal(err)
	}
	c, err := config.Parse(data, "integrityd.conf")
	if err != nil {
		t.Fatal(err)
	}
	if c.StateDir != "/state" || c.Root != "/var/www/html" || filepath.Dir(c.ControlSocket) != "/state" || c.LogFormat != "json" {
		t.Errorf("image configuration: root %q, state_dir %q, control_socket %q, log_format %q; want /var/www/html, /state, /state/..., json", c.Root, c.StateDir, c.ControlSocket, c.LogFormat)
	}
	if config.DefaultPath != "/etc/integrityd/integrityd.conf" {
		t.Errorf("the image puts its configuration at /etc/integrityd/integrityd.conf, the CLI reads %s", config.DefaultPath)
	}
	volume := false
	for _, ins := range final {
		if ins == `VOLUME ["/state"]` {
			volume = true
		}
	}
	if !volume {
		t.Error(`no VOLUME ["/state"] in the final stage`)
	}
}
