package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/integrityd/integrityd/internal/config"
	"github.com/integrityd/integrityd/internal/expect"
)

// defaultExpectFor is how long an expected release counts unless --for
// says otherwise: an update by hand takes minutes; a working day leaves
// room for a slow one without leaving the release in for days.
const defaultExpectFor = 12 * time.Hour

// runExpectRelease stages the manifests of a release about to be
// installed by hand (tar or rsync over the tree, a new container image):
// verified with the trust the daemon uses, kept in the state directory
// until --for has passed; the daemon (running or started later) treats
// the files they sign as update steps, not alerts. --clear removes it.
func runExpectRelease(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("expect-release", stderr)
	f := config.Command{Flags: []string{"config", "root", "state-dir", "trust", "crl"}, Output: "text"}.Bind(fs)
	dur := fs.Duration("for", defaultExpectFor, fmt.Sprintf("how long the release counts (at most %s)", expect.MaxFor))
	clear := fs.Bool("clear", false, "remove the expected release")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	switch {
	case *clear && len(pos) > 0:
		return usageError{"expect-release --clear takes no DIR or ARCHIVE"}
	case !*clear && len(pos) != 1:
		return usageError{"expect-release needs one DIR or ARCHIVE: the new release (nextcloud-X.tar.bz2, .zip, or its extracted directory) or an app's"}
	case *dur <= 0 || *dur > expect.MaxFor:
		return usageError{fmt.Sprintf("--for %s: must be more than 0 and at most %s", *dur, expect.MaxFor)}
	}
	s, err := settings(f)
	if err != nil {
		return err
	}
	if *clear {
		if err := expect.Clear(s.StateDir); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "no release expected in %s\n", s.StateDir)
		return nil
	}
	_, t, err := openInstall(s)
	if err != nil {
		return err
	}
	rel, err := expect.Stage(s.StateDir, pos[0], t, time.Now().Add(*dur))
	if err != nil {
		return err
	}
	what := "release " + rel.Version
	if rel.Version == "" {
		what = "app release"
	}
	fmt.Fprintf(stdout, "expecting %s until %s: its manifests verify (%d: %s)\n", what, rel.Until.Local().Format(time.RFC3339), len(rel.Scopes), strings.Join(rel.Scopes, ", "))
	fmt.Fprintf(stdout, "the daemon on %s takes the files they sign as update steps, not alerts; anything else is alerted as always\n", s.StateDir)
	return nil
}
