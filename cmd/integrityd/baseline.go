package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/integrityd/integrityd/internal/baseline"
	"github.com/integrityd/integrityd/internal/config"
	"github.com/integrityd/integrityd/internal/finding"
	"github.com/integrityd/integrityd/internal/kind"
	"github.com/integrityd/integrityd/internal/state"
)

// baselineCommand is what integrityd baseline takes.
func baselineCommand() config.Command {
	return config.Command{Flags: []string{"config", "root", "apps-path", "data-dir", "exclude", "workers", "state-dir"}, NeedRoot: true}
}

// who is the user running the command, for the baseline's record: the
// uid, its name, and the sudo user behind it when there is one.
func who() (int, string) {
	uid := os.Getuid()
	name := strconv.Itoa(uid)
	if u, err := user.LookupId(name); err == nil {
		name = u.Username
	}
	if su := os.Getenv("SUDO_USER"); su != "" && uid == 0 {
		name += " (sudo by " + su + ")"
	}
	return uid, name
}

// runBaseline records the unsigned coverage of the install as the
// baseline (the first time), or takes changes into it (--accept PATH...,
// --accept-all). Every change taken in is printed on stderr and kept in
// the baseline's log.
func runBaseline(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("baseline", stderr)
	f := baselineCommand().Bind(fs)
	accept := fs.Bool("accept", false, "take the current state of PATH... (files or directories: absolute, or relative to the root as findings name them) into the baseline")
	acceptAll := fs.Bool("accept-all", false, "take every change into the baseline (after an app update, say)")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	switch {
	case *accept && *acceptAll:
		return usageError{"--accept and --accept-all exclude each other"}
	case *accept && len(pos) == 0:
		return usageError{"--accept needs at least one PATH"}
	case !*accept && len(pos) > 0:
		return usageError{fmt.Sprintf("unexpected argument %q (to accept it: --accept PATH)", pos[0])}
	}
	s, err := settings(f)
	if err != nil {
		return err
	}
	in, _, err := openInstall(s)
	if err != nil {
		return err
	}
	if err := state.MakeDir(s.StateDir); err != nil {
		return err
	}
	lock, err := state.LockBaseline(ctx, s.StateDir, func(pid int) {
		fmt.Fprintf(stderr, "integrityd baseline: waiting for another integrityd baseline (pid %d) to finish\n", pid)
	})
	if err != nil {
		return err
	}
	defer lock.Close()
	path := filepath.Join(s.StateDir, baseline.FileName)
	b, err := baseline.Read(path)
	if err != nil && !*acceptAll {
		return err
	}
	if err != nil || b != nil && b.Root != in.Root {
		// --accept-all replaces a baseline that cannot be used.
		why := "cannot be read"
		if err == nil {
			why = "is of root " + b.Root
		}
		fmt.Fprintf(stderr, "integrityd baseline: the baseline %s %s: recording a new one\n", path, why)
		b = nil
	}
	switch {
	case b == nil && *accept:
		return fmt.Errorf("no baseline in %s: run integrityd baseline first", path)
	case b != nil && !*accept && !*acceptAll:
		return fmt.Errorf("%s holds a %s: integrityd baseline --accept PATH... or --accept-all takes changes in", path, b.Summary())
	}
	c, err := baseline.NewCoverage(in)
	if err != nil {
		return err
	}
	cur, err := c.Scan(ctx)
	if err != nil {
		return err
	}
	uid, name := who()
	if b == nil {
		b = baseline.New(in.Root, cur, uid, name)
		for _, f := range baseline.New(in.Root, nil, uid, name).Compare(cur, "") {
			if f.Kind == kind.HtaccessDirective {
				fmt.Fprintf(stderr, "integrityd baseline: WARNING: %s: %s (recorded as accepted)\n", f.Path, f.Message)
			}
		}
		var size int64
		for _, f := range cur {
			size += f.Size
		}
		b.Note(uid, name, fmt.Sprintf("recorded %d files (%d bytes)", len(cur), size))
		if err := b.Write(path); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "recorded the %s in %s (unsigned apps: %s)\n", b.Summary(), path, appList(c))
		notifyDaemon(ctx, s.StateDir, stderr)
		return nil
	}
	keys := []string{""}
	if *accept {
		keys = keys[:0]
		for _, p := range pos {
			keys = append(keys, acceptKey(c, in.Root, p))
		}
	}
	var taken []string
	for _, k := range keys {
		got := b.Accept(cur, []string{k})
		if len(got) == 0 && k != "" {
			return fmt.Errorf("nothing to accept at %s: no UNSIGNED_* finding there (integrityd check lists them)", finding.EscapeControl(k))
		}
		taken = append(taken, got...)
	}
	for _, t := range taken {
		fmt.Fprintf(stderr, "integrityd baseline: accepted %s (uid %d, %s)\n", t, uid, name)
		b.Note(uid, name, "accepted "+t)
	}
	if len(taken) == 0 {
		fmt.Fprintf(stdout, "nothing to accept: the install matches the %s\n", b.Summary())
		return nil
	}
	if err := b.Write(path); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "accepted %d changes into %s\n", len(taken), path)
	notifyDaemon(ctx, s.StateDir, stderr)
	return nil
}

// acceptKey is the baseline key of a PATH argument: an absolute path is
// made a key, another is a key already (relative to the root).
func acceptKey(c *baseline.Coverage, root, p string) string {
	if filepath.IsAbs(p) {
		p = filepath.Clean(p)
		if p == root {
			return ""
		}
		return c.Key(p)
	}
	return strings.TrimSuffix(filepath.Clean(p), "/")
}

func appList(c *baseline.Coverage) string {
	apps := c.UnsignedApps()
	if len(apps) == 0 {
		return "none"
	}
	return strings.Join(apps, ", ")
}

// notifyDaemon asks a daemon running on stateDir for a rescan, which
// reads the baseline again; without one, nothing.
func notifyDaemon(ctx context.Context, stateDir string, stderr io.Writer) {
	sock, err := state.ReadControl(stateDir)
	if err != nil || sock == "" {
		return
	}
	if err := requestRescan(ctx, sock); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintf(stderr, "integrityd baseline: the daemon did not take the rescan (%v): it reads the baseline at its next full scan (integrityd rescan, or systemctl reload integrityd)\n", err)
		return
	}
	fmt.Fprintln(stderr, "integrityd baseline: the running daemon rescans with the new baseline")
}
