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
	"slices"
	"strings"

	"github.com/integrityd/integrityd/internal/config"
	"github.com/integrityd/integrityd/internal/verify"
)

var errHelp = errors.New("help shown")

// stringList is a repeatable flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

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

// checkFormat refuses an unknown --output.
func checkFormat(output string) error {
	if !slices.Contains(verify.Formats, output) {
		return usageError{fmt.Sprintf("unknown --output %q (want one of %s)", output, strings.Join(verify.Formats, ", "))}
	}
	return nil
}

func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("integrityd "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// checkFlags are the settings of the commands that check: flags, and the
// configuration file for what the flags do not set.
type checkFlags struct {
	config                                     string
	root, dataDir, trust, crl, output, enforce string
	appsPaths, exclude                         stringList
	workers                                    int
	fs                                         *flag.FlagSet
	file                                       *config.Config // the configuration file read, if any
}

func (c *checkFlags) register(fs *flag.FlagSet, defaultOutput string) {
	c.fs = fs
	fs.StringVar(&c.config, "config", "", "configuration file (default "+config.DefaultPath+" if it exists); flags override it")
	fs.StringVar(&c.root, "root", "", "Nextcloud server root (where version.php is)")
	fs.Var(&c.appsPaths, "apps-path", "apps directory (repeatable; default: apps_paths of config/config.php, else ROOT/apps)")
	fs.StringVar(&c.dataDir, "data-dir", "", "custom data directory to exclude (default: datadirectory of config/config.php)")
	fs.StringVar(&c.trust, "trust", "", "PEM trust anchors (default ROOT/resources/codesigning/root.crt)")
	fs.StringVar(&c.crl, "crl", "", `CRL signed by a trust anchor (default ROOT/resources/codesigning/root.crl if present; "none" to skip)`)
	fs.Var(&c.exclude, "exclude", "path not checked at all (repeatable; this weakens the check)")
	fs.StringVar(&c.output, "output", defaultOutput, "output format: "+strings.Join(verify.Formats, ", "))
	fs.StringVar(&c.enforce, "enforce", "auto", `check even where Nextcloud would not: "auto" (follow $OC_Channel in version.php and integrity.check.disabled), "yes" or "no"`)
	fs.IntVar(&c.workers, "workers", 0, "files hashed in parallel (default: four per CPU)")
}

// loadConfig reads the configuration file and applies what the flags did
// not set.
func (c *checkFlags) loadConfig() error {
	path := c.config
	if path == "" {
		if _, err := os.Stat(config.DefaultPath); err != nil {
			return nil
		}
		path = config.DefaultPath
	}
	f, err := config.Load(path)
	if err != nil {
		return err
	}
	c.file = f
	set := map[string]bool{}
	c.fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	str := func(flagName, key string, dst *string, v string) {
		if !set[flagName] && f.Set[key] {
			*dst = v
		}
	}
	str("root", "root", &c.root, f.Root)
	str("data-dir", "data_dir", &c.dataDir, f.DataDir)
	str("trust", "trust", &c.trust, f.Trust)
	str("crl", "crl", &c.crl, f.CRL)
	str("enforce", "enforce", &c.enforce, f.Enforce)
	if !set["apps-path"] {
		c.appsPaths = append(c.appsPaths, f.AppsPaths...)
	}
	if !set["exclude"] {
		c.exclude = append(c.exclude, f.Exclude...)
	}
	return nil
}

// setup validates the flags and loads the install and the trust.
func (c *checkFlags) setup() (*verify.Install, *verify.Trust, error) {
	if err := c.loadConfig(); err != nil {
		return nil, nil, err
	}
	if c.root == "" {
		return nil, nil, usageError{"--root is required (or root = in the configuration file)"}
	}
	if err := checkFormat(c.output); err != nil {
		return nil, nil, err
	}
	if c.enforce != "auto" && c.enforce != "yes" && c.enforce != "no" {
		return nil, nil, usageError{fmt.Sprintf(`--enforce must be "auto", "yes" or "no", not %q`, c.enforce)}
	}
	if fi, err := os.Stat(c.root); err != nil || !fi.IsDir() {
		return nil, nil, fmt.Errorf("server root %s: not a directory", c.root)
	}
	in := verify.NewInstall(c.root, c.appsPaths, c.dataDir)
	in.Checker = verify.Checker{Workers: c.workers, Progress: new(verify.Progress)}
	for _, e := range c.exclude {
		if !filepath.IsAbs(e) {
			e = filepath.Join(in.Root, e)
		}
		in.Exclude = append(in.Exclude, filepath.Clean(e))
	}
	trust := c.trust
	if trust == "" {
		trust = filepath.Join(in.Root, "resources", "codesigning", "root.crt")
	}
	crl := c.crl
	switch crl {
	case "none":
		crl = ""
	case "":
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
func (c *checkFlags) prepare(fs *flag.FlagSet, args []string) (*verify.Install, *verify.Trust, error) {
	if err := parseNoArgs(fs, args); err != nil {
		return nil, nil, err
	}
	in, t, err := c.setup()
	if err != nil {
		return nil, nil, err
	}
	if ok, why, err := c.enforced(in); err != nil {
		return nil, nil, err
	} else if !ok {
		return nil, nil, errors.New(why)
	}
	return in, t, nil
}

// enforced applies --enforce; it returns false with a reason when the
// check must not run.
func (c *checkFlags) enforced(in *verify.Install) (bool, string, error) {
	switch c.enforce {
	case "yes":
		return true, "", nil
	case "no":
		return false, "--enforce=no", nil
	}
	ok, channel, err := in.Enforced()
	if err != nil {
		return false, "", fmt.Errorf("%v (use --enforce=yes to check anyway)", err)
	}
	if !ok {
		return false, fmt.Sprintf("Nextcloud does not enforce the integrity check on this install (release channel %q in version.php, or integrity.check.disabled in config.php); use --enforce=yes to check anyway", channel), nil
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
	out, err := r.Format(format, single)
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
func checkScopes(ctx context.Context, stdout, stderr io.Writer, scopes []*verify.Scope, t *verify.Trust, output string, single bool) error {
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
	stop()
	return printReport(stdout, &r, output, single)
}

func runCheck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c checkFlags
	fs := newFlagSet("check", stderr)
	c.register(fs, "text")
	in, t, err := c.prepare(fs, args)
	if err != nil {
		return err
	}
	scopes, err := in.Apps()
	if err != nil {
		return err
	}
	err = checkScopes(ctx, stdout, stderr, append([]*verify.Scope{in.Core()}, scopes...), t, c.output, false)
	if pinnedDiffers(stderr, in, t) && err == nil {
		return errFindings
	}
	return err
}

func runCheckCore(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c checkFlags
	fs := newFlagSet("check-core", stderr)
	c.register(fs, "plain")
	in, t, err := c.prepare(fs, args)
	if err != nil {
		return err
	}
	err = checkScopes(ctx, stdout, stderr, []*verify.Scope{in.Core()}, t, c.output, true)
	if pinnedDiffers(stderr, in, t) && err == nil {
		return errFindings
	}
	return err
}

// runCheckApp checks one app. Like occ integrity:check-app it always
// checks, whatever the release channel.
func runCheckApp(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c checkFlags
	var path string
	fs := newFlagSet("check-app", stderr)
	c.register(fs, "plain")
	fs.StringVar(&path, "path", "", "directory of the app (default: found in the apps directories)")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError{"exactly one APPID is required"}
	}
	in, t, err := c.setup()
	if err != nil {
		return err
	}
	sc := in.App(pos[0], path)
	if fi, err := os.Stat(sc.Dir); err != nil || !fi.IsDir() {
		return fmt.Errorf("app %s: %s is not a directory", pos[0], sc.Dir)
	}
	return checkScopes(ctx, stdout, stderr, []*verify.Scope{sc}, t, c.output, true)
}
