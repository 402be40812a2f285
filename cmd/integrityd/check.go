package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/integrityd/integrityd/internal/baseline"
	"github.com/integrityd/integrityd/internal/config"
	"github.com/integrityd/integrityd/internal/report"
	"github.com/integrityd/integrityd/internal/verify"
)

var errHelp = errors.New("help shown")

// parseFlags parses args allowing flags after positional arguments
// (integrityd check-app APPID --root DIR) and returns the positionals.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, errHelp
			}
			return nil, usageError{err.Error()}
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// parseNoArgs parses args for a command that takes no positional argument.
func parseNoArgs(fs *flag.FlagSet, args []string) error {
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageError{fmt.Sprintf("unexpected argument %q", pos[0])}
	}
	return nil
}

func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("integrityd "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// checkFlags are the settings flags of the commands that check.
func checkFlags() []string {
	return []string{"config", "root", "apps-path", "data-dir", "trust", "crl", "exclude", "output", "enforce", "workers"}
}

// checkCommand is what check, check-core and check-app take.
func checkCommand(output string) config.Command {
	return config.Command{Flags: checkFlags(), Output: output, Outputs: report.Formats, NeedRoot: true}
}

// settings returns the settings of a command whose flags are parsed.
func settings(f *config.Flags) (*config.Settings, error) {
	s, err := f.Settings()
	var fe *config.FlagError
	if errors.As(err, &fe) {
		return nil, usageError{fe.Msg}
	}
	return s, err
}

// openInstall loads the install and the trust that settings s name.
func openInstall(s *config.Settings) (*verify.Install, *verify.Trust, error) {
	in := verify.NewInstall("", nil, "")
	if s.Root != "" {
		var err error
		if in, err = verify.OpenInstall(s.Root, s.AppsPaths, s.DataDir); err != nil {
			return nil, nil, err
		}
	}
	in.Checker = verify.Checker{Workers: s.Workers, Progress: new(verify.Progress)}
	for _, e := range s.Exclude {
		if !filepath.IsAbs(e) {
			e = filepath.Join(in.Root, e)
		}
		in.Exclude = append(in.Exclude, filepath.Clean(e))
	}
	// With no --trust, Nextcloud's own anchors built into the binary: the
	// install's copy could be replaced by whoever writes the install (it
	// is only compared with them).
	trust := s.Trust
	if trust == "" {
		trust = verify.EmbeddedAnchorFile
	}
	crl := s.CRL
	switch {
	case crl == "none":
		crl = ""
	case crl == "" && s.Trust == "":
		crl = verify.EmbeddedCRLFile
	case crl == "":
		def := filepath.Join(in.Root, "resources", "codesigning", "root.crl")
		if _, err := os.Stat(def); err == nil {
			crl = def
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, nil, fmt.Errorf("CRL %s: %w", def, err)
		}
	}
	t, err := verify.LoadTrust(trust, crl)
	if err != nil {
		return nil, nil, err
	}
	return in, t, nil
}

// prepare parses args and loads the install and trust of a check that
// Nextcloud only runs where it is enforced (check, check-core).
func prepare(fs *flag.FlagSet, f *config.Flags, args []string) (*config.Settings, *verify.Install, *verify.Trust, error) {
	if err := parseNoArgs(fs, args); err != nil {
		return nil, nil, nil, err
	}
	s, err := settings(f)
	if err != nil {
		return nil, nil, nil, err
	}
	in, t, err := openInstall(s)
	if err != nil {
		return nil, nil, nil, err
	}
	if err := enforced(s, in); err != nil {
		return nil, nil, nil, err
	}
	return s, in, t, nil
}

// enforced applies --enforce: an error when the check must not run.
func enforced(s *config.Settings, in *verify.Install) error {
	if ok, why, err := enforcedWhy(s, in); errors.Is(err, fs.ErrPermission) {
		return err // --enforce=yes would not read it either
	} else if err != nil {
		return fmt.Errorf("%v (use --enforce=yes to check anyway)", err)
	} else if !ok {
		if s.Enforce == "auto" {
			why += "; use --enforce=yes to check anyway"
		}
		return errors.New(why)
	}
	return nil
}

// enforcedWhy returns false with a reason for the user when the check
// must not run.
func enforcedWhy(s *config.Settings, in *verify.Install) (bool, string, error) {
	switch s.Enforce {
	case "yes":
		return true, "", nil
	case "no":
		return false, "--enforce=no", nil
	}
	ok, channel, err := in.Enforced()
	if err != nil {
		return false, "", err
	}
	if !ok {
		// Enforced looks at the channel first, then (on a channel that
		// enforces) at integrity.check.disabled.
		why := fmt.Sprintf("release channel %q (version.php, or updater.release.channel in config.php)", channel)
		if channel != "" && channel != "git" {
			why = "integrity.check.disabled is set in config.php"
		}
		return false, "Nextcloud does not enforce the integrity check on this install: " + why, nil
	}
	return true, "", nil
}

// pinnedDiffers warns when the trust anchors are pinned outside the
// install and the install's own root.crt differs from them.
func pinnedDiffers(stderr io.Writer, in *verify.Install, t *verify.Trust) bool {
	inTree := filepath.Join(in.Root, verify.InTreeAnchors)
	if abs, err := filepath.Abs(t.AnchorFile); err != nil || abs == inTree {
		return false
	}
	differs, why := t.DiffersFrom(inTree)
	if differs {
		fmt.Fprintf(stderr, "integrityd: WARNING: the install's trust anchor differs from the pinned one: %s\n", why)
	}
	return differs
}

func printReport(w io.Writer, r *verify.Report, format string, single bool) error {
	out, err := report.Format(r, format, single)
	if err != nil {
		return err
	}
	if _, err := w.Write(out); err != nil {
		return err
	}
	if !r.Clean() {
		return errFindings
	}
	return nil
}

// checkScopes checks scopes, with progress on a terminal, and prints the
// report (single: one scope, printed like occ without the scope level).
func checkScopes(ctx context.Context, stdout, stderr io.Writer, scopes []*verify.Scope, t *verify.Trust, output string, single bool, extra ...verify.ScopeResult) error {
	var r verify.Report
	var p *verify.Progress
	if len(scopes) > 0 {
		p = scopes[0].Install().Checker.Progress
	}
	stop := progress(stderr, p, expectedFiles(scopes, t))
	defer stop()
	for _, sc := range scopes {
		res, err := sc.Check(ctx, t)
		if err != nil {
			return err
		}
		r.Scopes = append(r.Scopes, res)
	}
	r.Scopes = append(r.Scopes, extra...)
	stop()
	return printReport(stdout, &r, output, single)
}

func runCheck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("check", stderr)
	cmd := checkCommand("text")
	cmd.Flags = append(cmd.Flags, "state-dir", "unsigned")
	f := cmd.Bind(fs)
	s, in, t, err := prepare(fs, f, args)
	if err != nil {
		return err
	}
	scopes, warnings, err := in.Apps()
	if err != nil {
		return err
	}
	for _, w := range warnings {
		fmt.Fprintf(stderr, "integrityd check: warning: %v\n", w)
	}
	var extra []verify.ScopeResult
	if r, ok, err := checkUnsigned(ctx, s, in, stderr); err != nil {
		return err
	} else if ok {
		extra = append(extra, r)
	}
	err = checkScopes(ctx, stdout, stderr, append([]*verify.Scope{in.Core()}, scopes...), t, s.Output, false, extra...)
	if pinnedDiffers(stderr, in, t) && err == nil {
		return errFindings
	}
	return err
}

func runCheckCore(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("check-core", stderr)
	f := checkCommand("plain").Bind(fs)
	s, in, t, err := prepare(fs, f, args)
	if err != nil {
		return err
	}
	err = checkScopes(ctx, stdout, stderr, []*verify.Scope{in.Core()}, t, s.Output, true)
	if pinnedDiffers(stderr, in, t) && err == nil {
		return errFindings
	}
	return err
}

// runCheckApp checks one app. Like occ integrity:check-app it always
// checks, whatever the release channel.
func runCheckApp(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var path string
	fs := newFlagSet("check-app", stderr)
	// --root is not needed with --path: an app directory (an unpacked
	// tarball, say) is checked on its own, against the built-in anchors.
	cmd := checkCommand("plain")
	cmd.NeedRoot = false
	f := cmd.Bind(fs)
	fs.StringVar(&path, "path", "", "directory of the app (default: the copy Nextcloud loads from the apps directories); without --root, an app directory on its own")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError{"exactly one APPID is required"}
	}
	s, err := settings(f)
	if err != nil {
		return err
	}
	if s.Root == "" && path == "" {
		return usageError{"--root is required (or root = in the configuration file), or --path DIR to check an app directory on its own"}
	}
	in, t, err := openInstall(s)
	if err != nil {
		return err
	}
	if path != "" {
		if path, err = filepath.Abs(path); err != nil {
			return err
		}
	}
	sc := in.App(pos[0], path)
	if fi, err := os.Stat(sc.Dir); err != nil || !fi.IsDir() {
		return fmt.Errorf("app %s: %s is not a directory", pos[0], sc.Dir)
	}
	return checkScopes(ctx, stdout, stderr, []*verify.Scope{sc}, t, s.Output, true)
}

// checkUnsigned checks the code no signature covers against the baseline
// in the state directory, when the unsigned setting says so (ok false:
// not checked, and stderr says why when a baseline was asked for).
func checkUnsigned(ctx context.Context, s *config.Settings, in *verify.Install, stderr io.Writer) (verify.ScopeResult, bool, error) {
	b, mode, err := baseline.Open(s.Unsigned, filepath.Join(s.StateDir, baseline.FileName), in.Root)
	if err != nil {
		if errors.Is(err, fs.ErrPermission) && s.Unsigned == baseline.Auto {
			fmt.Fprintf(stderr, "integrityd check: %v; unsigned code not checked\n", err)
			return verify.ScopeResult{}, false, nil
		}
		return verify.ScopeResult{}, false, err
	}
	if b == nil {
		return verify.ScopeResult{}, false, nil // mode says why
	}
	_ = mode
	c, err := baseline.NewCoverage(in)
	if err != nil {
		return verify.ScopeResult{}, false, err
	}
	cur, err := c.Scan(ctx)
	if err != nil {
		return verify.ScopeResult{}, false, err
	}
	return b.Result(cur, in.Root), true, nil
}
