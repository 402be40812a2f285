package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/integrityd/integrityd/internal/config"
)

// instance is one integrityd of a host, as status --all lists it: the main
// unit (integrityd.conf) or a template instance (NAME.conf, the unit
// integrityd@NAME).
type instance struct {
	Name   string `json:"instance"`
	Config string `json:"config"`
	Root   string `json:"root"`
	State  string `json:"state_dir"`
	// What its state says; Error is set instead when it cannot be read.
	Running      bool           `json:"running"`
	Stale        string         `json:"stale"`
	Error        string         `json:"error,omitempty"`
	LastFullScan time.Time      `json:"last_full_scan"`
	Files        int            `json:"files"`
	Degraded     string         `json:"degraded"`
	Findings     int            `json:"findings"`
	ByKind       map[string]int `json:"findings_by_kind"`
	TrustDiffers string         `json:"trust_differs"`
	code         int            // what status of this instance alone exits with
}

// instances lists the configurations of dir: integrityd.conf first, then
// every other NAME.conf, by name. A configuration that does not load is
// an instance with its error.
func instances(dir string) ([]*instance, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.conf"))
	if err != nil {
		return nil, err
	}
	main := filepath.Join(dir, filepath.Base(config.DefaultPath))
	slices.SortFunc(paths, func(a, b string) int {
		switch {
		case a == main:
			return -1
		case b == main:
			return 1
		}
		return strings.Compare(a, b)
	})
	if len(paths) == 0 {
		return nil, fmt.Errorf("status --all: no integrityd configuration (*.conf) in %s", dir)
	}
	var all []*instance
	for _, p := range paths {
		name := "integrityd@" + strings.TrimSuffix(filepath.Base(p), ".conf")
		if p == main {
			name = "integrityd"
		}
		all = append(all, readInstance(name, p))
	}
	return all, nil
}

// readInstance reads the settings of the configuration file path, then
// the state of its daemon.
func readInstance(name, path string) *instance {
	in := &instance{Name: name, Config: path, code: exitError}
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	f := config.Command{Flags: []string{"config", "root", "state-dir"}}.Bind(fs)
	if err := fs.Parse([]string{"--config", path}); err != nil {
		in.Error = err.Error()
		return in
	}
	s, err := f.Settings()
	if err != nil {
		in.Error = err.Error()
		return in
	}
	in.Root, in.State = s.Root, s.StateDir
	ds, err := loadState(s.StateDir)
	var nr errNotRunning
	switch {
	case errors.As(err, &nr):
		in.Stale, in.code = nr.msg, exitNotRunning
		return in
	case err != nil:
		in.Error = err.Error()
		return in
	}
	in.Running, in.Stale = ds.running, ds.stale
	in.LastFullScan, in.Files, in.Degraded = ds.LastFullScan, ds.Files, ds.Degraded
	in.Findings, in.TrustDiffers = len(ds.Findings), ds.TrustDiffers
	in.ByKind = map[string]int{}
	for k, n := range countKinds(ds.Findings) {
		in.ByKind[string(k)] = n
	}
	switch err := ds.verdict(); {
	case err == nil:
		in.code = exitClean
	case errors.Is(err, errFindings):
		in.code = exitFindings
	default:
		in.code = exitNotRunning
	}
	return in
}

// statusAll prints one line (or JSON object) per instance of the host and
// returns the worst of their status exit codes: an unreadable one (2) over
// one not running (3) over findings (1) over clean (0).
func statusAll(stdout io.Writer, dir, output string) error {
	all, err := instances(dir)
	if err != nil {
		return err
	}
	if output == "json" {
		out, _ := json.MarshalIndent(all, "", "  ")
		fmt.Fprintf(stdout, "%s\n", out)
	} else {
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "INSTANCE\tROOT\tSTATE\tFINDINGS\tLAST FULL SCAN\tWATCHER")
		for _, in := range all {
			st, watcher, last, findings := "running", "ok", "-", "-"
			switch {
			case in.Error != "":
				st = "ERROR: " + in.Error
			case in.Stale != "":
				st = "STALE: " + in.Stale
			}
			if in.Degraded != "" {
				watcher = "DEGRADED"
			}
			if !in.LastFullScan.IsZero() {
				last = time.Since(in.LastFullScan).Round(time.Second).String() + " ago"
			}
			if in.Error == "" && in.Running {
				findings = fmt.Sprint(in.Findings)
				if in.TrustDiffers != "" {
					findings += " (TRUST ANCHOR differs)"
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", in.Name, orNone(in.Root), st, findings, last, watcher)
		}
		tw.Flush()
	}
	worst := exitClean
	for _, in := range all {
		worst = worseExit(worst, in.code)
	}
	switch worst {
	case exitError:
		return errors.New("the state of some instances cannot be read (see ERROR above)")
	case exitNotRunning:
		return errNotRunning{"some instances are not running or their state is stale"}
	case exitFindings:
		return errFindings
	}
	return nil
}

// worseExit orders status exit codes: 2 (cannot tell) > 3 (not running) >
// 1 (findings) > 0.
func worseExit(a, b int) int {
	rank := map[int]int{exitClean: 0, exitFindings: 1, exitNotRunning: 2, exitError: 3}
	if rank[b] > rank[a] {
		return b
	}
	return a
}
