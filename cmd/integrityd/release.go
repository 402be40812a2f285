package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strings"

	"github.com/integrityd/integrityd/internal/finding"
	"github.com/integrityd/integrityd/internal/kind"
	"github.com/integrityd/integrityd/internal/state"
)

// runAcceptRelease takes in the older releases of the named scopes that
// the daemon reports as VERSION_DOWNGRADE (an admin's deliberate
// downgrade): through the running daemon's control socket, or, when no
// daemon runs, in the state file under the state directory's lock.
func runAcceptRelease(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("accept-release", stderr)
	f := stateCommand().Bind(fs)
	scopes, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(scopes) == 0 {
		return usageError{"accept-release needs at least one SCOPE (core or an app id, as the VERSION_DOWNGRADE finding names it)"}
	}
	for _, sc := range scopes {
		if sc == "" || strings.ContainsAny(sc, " \t\r\n") {
			return usageError{fmt.Sprintf("scope %q: not a scope name", sc)}
		}
	}
	s, err := settings(f)
	if err != nil {
		return err
	}
	done, err := acceptOnline(ctx, s.StateDir, scopes)
	if errors.Is(err, errNoSocket) {
		done, err = acceptOffline(s.StateDir, scopes)
	}
	if err != nil {
		return err
	}
	for _, sc := range done {
		fmt.Fprintf(stdout, "accepted the release of %s\n", sc)
	}
	return nil
}

// acceptOnline asks the daemon on stateDir's control socket
// (errNoSocket: no daemon listens on one).
func acceptOnline(ctx context.Context, stateDir string, scopes []string) ([]string, error) {
	sock, answer, err := callDaemon(ctx, stateDir, "accept-release "+strings.Join(scopes, " "), acceptTimeout+controlTimeout)
	var refused *refusedError
	switch {
	case errors.As(err, &refused):
		return nil, fmt.Errorf("integrityd (on %s): %s", sock, refused.why)
	case errors.Is(err, fs.ErrPermission):
		return nil, fmt.Errorf("permission denied connecting to %s: run as root", sock)
	case err != nil:
		return nil, err
	}
	return strings.Fields(answer), nil
}

// acceptOffline changes the state file of a stopped daemon: the scopes'
// recorded releases and VERSION_DOWNGRADE findings go, and the daemon
// records the releases it finds at its next start.
func acceptOffline(stateDir string, scopes []string) ([]string, error) {
	lock, err := state.AcquireLock(stateDir)
	var inUse *state.InUseError
	if errors.As(err, &inUse) {
		return nil, fmt.Errorf("%w, without a control socket: run accept-release as root where it can reach the daemon's socket, or stop the daemon first", err)
	}
	if err != nil {
		return nil, err
	}
	defer lock.Close()
	st, err := state.Load(stateDir)
	if err != nil {
		return nil, err
	}
	if st == nil {
		return nil, fmt.Errorf("no state in %s: nothing to accept", stateDir)
	}
	var keep []*finding.Finding
	found := map[string]bool{}
	for i := range st.Findings {
		f := &st.Findings[i]
		if f.Kind == kind.VersionDowngrade && slices.Contains(scopes, f.Scope) {
			found[f.Scope] = true
			continue
		}
		keep = append(keep, f)
	}
	for _, sc := range scopes {
		if !found[sc] {
			return nil, fmt.Errorf("nothing to accept: %s has no %s finding in %s", finding.EscapeControl(sc), kind.VersionDowngrade, state.Path(stateDir))
		}
		delete(st.Releases, sc)
	}
	if err := state.SaveFindings(stateDir, st, keep); err != nil {
		return nil, err
	}
	return scopes, nil
}
