// Command integrityd checks a Nextcloud installation against its code
// signatures: it parses the flags, wires the packages together and runs
// one subcommand: the daemon (run), one-shot checks like occ
// integrity:check-core/check-app, a check of everything, the unsigned
// baseline, status, signing, and a demo.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"

	buildversion "github.com/integrityd/integrityd/internal/version"
)

// version is stamped at link time: go build -ldflags "-X main.version=1.2.3"
// (packaging/docker/Dockerfile and packaging/install.sh do). Without it,
// the module's build info gives one (see internal/version).
var version string

func init() { buildversion.Stamp = version }

// Exit statuses.
const (
	exitClean    = 0 // no findings
	exitFindings = 1 // the check found problems
	exitError    = 2 // usage or fatal error
	// exitConfig is EX_CONFIG of sysexits.h: integrityd run could not
	// start with its configuration (bad settings, unreadable or invalid
	// file, unknown key). Restarting cannot help: the packaged unit says
	// RestartPreventExitStatus=78.
	exitConfig = 78
)

// configError is a configuration that integrityd run cannot start with.
type configError struct{ err error }

func (e configError) Error() string { return "configuration error: " + e.err.Error() }
func (e configError) Unwrap() error { return e.err }

// usageError is a mistake in the command line.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// errFindings reports that a check completed with findings.
var errFindings = errors.New("findings")

type command struct {
	name, args, help string
	run              func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

// commands is the command table, read-only.
var commands = []command{
	{"run", "--root DIR [--state-dir DIR] [--control-socket PATH]", "full scan, then watch and recheck what changes (the daemon; exit 78 on a configuration error, 2 when another daemon holds the state directory)", runDaemon},
	{"status", "[--output text|json] [--state-dir DIR]", "what the running daemon knows (exit 0 clean, 1 findings, 3 not running or stale; -h lists the json fields)", runStatus},
	{"report", "[--output FORMAT] [--state-dir DIR]", "the daemon's current findings, as check prints them", runReport},
	{"rescan", "[--output FORMAT] [--state-dir DIR]", "ask the daemon for a full rescan (on its control socket, which group integrityd may use; else SIGHUP), wait, print the result", runRescan},
	{"check-config", "[--config FILE] [run flags]", "validate the configuration and exit", runCheckConfig},
	{"check", "--root DIR", "check core and every app that must be checked", runCheck},
	{"check-core", "--root DIR", "check core (occ integrity:check-core)", runCheckCore},
	{"check-app", "APPID [--root DIR] [--path DIR]", "check one app (occ integrity:check-app); --path without --root: an app directory on its own", runCheckApp},
	{"baseline", "--root DIR [--state-dir DIR] [--accept PATH... | --accept-all]", "record the code no signature covers (unsigned apps, themes/, PHP outside the scopes, the .htaccess below its marker) as the baseline that check and the daemon compare it with; --accept takes changes in", runBaseline},
	{"accept-release", "SCOPE... [--state-dir DIR]", "take in an older release of core or an app that the daemon reports as VERSION_DOWNGRADE (a downgrade done on purpose; as root)", runAcceptRelease},
	{"expect-release", "DIR|ARCHIVE [--for DURATION] [--state-dir DIR] | --clear", "before an update by hand (tar, rsync, a new image): stage the new release's manifests, verified, so that the daemon takes its files as update steps, not alerts, until --for has passed (12h; as root)", runExpectRelease},
	{"sign-app", "--path DIR --privateKey KEY --certificate CRT", "write DIR/appinfo/signature.json", runSignApp},
	{"sign-core", "--path DIR --privateKey KEY --certificate CRT", "write DIR/core/signature.json", runSignCore},
	{"demo", "[--build-only] [DIR]", "build a signed demo install, check it, tamper with it, check again", runDemo},
	{"version", "", "print the version (also: integrityd --version)", runVersion},
}

// runVersion prints the version, the commit when known, the Go version
// and the platform.
func runVersion(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("version", stderr)
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	printVersion(stdout)
	return nil
}

func printVersion(w io.Writer) {
	in := buildversion.Get()
	fmt.Fprintf(w, "integrityd %s\n", in.Version)
	if in.Revision != "" {
		mod := ""
		if in.Modified {
			mod = " (modified)"
		}
		fmt.Fprintf(w, "commit %s%s\n", in.Revision, mod)
	}
	fmt.Fprintf(w, "%s %s/%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// wantsHelp says whether a command's arguments ask for its help (-h,
// -help, --help, as the flag package takes them): the help then goes to
// stdout, like the top-level usage of "integrityd -h".
func wantsHelp(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "-h", "-help", "--h", "--help":
			return true
		}
	}
	return false
}

func main() { os.Exit(runWithSignals(os.Args[1:])) }

// runWithSignals is run with SIGINT and SIGTERM cancelling the context.
func runWithSignals(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return run(ctx, args, os.Stdout, os.Stderr)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitError
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		usage(stdout)
		return exitClean
	case "--version", "-version", "-V":
		printVersion(stdout)
		return exitClean
	}
	for _, c := range commands {
		if c.name != args[0] {
			continue
		}
		cmdStderr := stderr
		if wantsHelp(args[1:]) {
			cmdStderr = stdout
		}
		err := c.run(ctx, args[1:], stdout, cmdStderr)
		var ue usageError
		var nr errNotRunning
		var ce configError
		switch {
		case err == nil:
			return exitClean
		case errors.Is(err, errFindings):
			return exitFindings
		case errors.As(err, &ce):
			// One line: it is what systemctl status and the journal show.
			fmt.Fprintf(stderr, "integrityd %s: %s\n", c.name, strings.ReplaceAll(ce.Error(), "\n", "; "))
			return exitConfig
		case errors.As(err, &nr):
			fmt.Fprintf(stderr, "integrityd %s: %v\n", c.name, err)
			return exitNotRunning
		case errors.As(err, &ue):
			fmt.Fprintf(stderr, "integrityd %s: %v\nusage: integrityd %s %s\n", c.name, err, c.name, c.args)
			return exitError
		case errors.Is(err, errHelp):
			return exitClean
		default:
			fmt.Fprintf(stderr, "integrityd %s: %v\n", c.name, err)
			return exitError
		}
	}
	fmt.Fprintf(stderr, "integrityd: unknown command %q\n", args[0])
	usage(stderr)
	return exitError
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: integrityd COMMAND [flags]\n       integrityd --version\n\ncommands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-11s %s\n              %s\n", c.name, c.args, c.help)
	}
	fmt.Fprintln(w, "\nRun 'integrityd COMMAND -h' for the flags of a command.\nExit status: 0 clean, 1 findings, 2 usage or fatal error (status, report, rescan: also\n"+
		"permission denied), 3 (status, report, rescan) daemon not running or stale, 78 (run) configuration error:\n"+
		"invalid settings, unreadable configuration file, unknown key (EX_CONFIG; the unit does not restart on it).")
}
