// Package version is integrityd's version, the same for "integrityd
// --version" and the integrityd_build_info metric.
package version

import (
	"runtime/debug"
	"sync"
)

// Stamp is the version given at link time (main sets it from
// -ldflags "-X main.version=..."; the Dockerfile and packaging/install.sh
// pass one). Empty when none was given.
var Stamp string

var (
	once sync.Once
	info Info
)

// Info is what a build knows of itself.
type Info struct {
	Version  string // the stamp, else the module's version, else "devel"
	Revision string // the VCS commit, "" if unknown
	Modified bool   // the checkout had uncommitted changes
}

// Get returns this binary's Info (computed once).
func Get() Info {
	once.Do(func() {
		bi, _ := debug.ReadBuildInfo()
		info = Resolve(Stamp, bi)
	})
	return info
}

// String is Get().Version.
func String() string { return Get().Version }

// Resolve is the Info of a binary with stamp and build info bi (nil when
// the binary has none): the stamp first, else the main module's version
// (go install ...@vX, or the VCS pseudo-version go build records in a
// checkout), else "devel" with the commit when it is known.
func Resolve(stamp string, bi *debug.BuildInfo) Info {
	var in Info
	if bi != nil {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				in.Revision = s.Value
			case "vcs.modified":
				in.Modified = s.Value == "true"
			}
		}
	}
	switch {
	case stamp != "":
		in.Version = stamp
	case bi != nil && bi.Main.Version != "" && bi.Main.Version != "(devel)":
		in.Version = bi.Main.Version
	default:
		in.Version = "devel"
		if in.Revision != "" {
			rev := in.Revision
			if len(rev) > 12 {
				rev = rev[:12]
			}
			in.Version += "+" + rev
			if in.Modified {
				in.Version += ".dirty"
			}
		}
	}
	return in
}
