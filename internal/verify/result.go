package verify

import (
	"sort"

	"github.com/integrityd/integrityd/internal/finding"
	"github.com/integrityd/integrityd/internal/kind"
)

// ScopeResult is the outcome of checking one scope.
type ScopeResult struct {
	Scope  string
	Dir    string // the scope's directory ("" when not known)
	Digest Digest // the digest the manifest's signature verified with

	Exception *finding.Finding  // the scope could not be checked at all (Path "")
	Findings  []finding.Finding // file-level findings, sorted
	Files     int               // files hashed
	Bytes     int64             // bytes hashed
}

// AllFindings returns the findings of r, the scope exception first.
func (r ScopeResult) AllFindings() []finding.Finding {
	if r.Exception == nil {
		return r.Findings
	}
	return append([]finding.Finding{*r.Exception}, r.Findings...)
}

// Clean reports whether the scope passed.
func (r ScopeResult) Clean() bool { return r.Exception == nil && len(r.Findings) == 0 }

// Report is the result of a check of one or more scopes.
type Report struct {
	Scopes []ScopeResult
}

// Clean reports whether every scope passed.
func (r *Report) Clean() bool {
	for _, s := range r.Scopes {
		if !s.Clean() {
			return false
		}
	}
	return true
}

// ReportFromFindings groups findings (as a daemon keeps them) into a
// Report: core first, then apps by name.
func ReportFromFindings(fs []finding.Finding) *Report {
	by := map[string]*ScopeResult{}
	var names []string
	for _, f := range fs {
		r := by[f.Scope]
		if r == nil {
			r = &ScopeResult{Scope: f.Scope}
			by[f.Scope] = r
			names = append(names, f.Scope)
		}
		if f.Kind == kind.Exception && f.Path == "" {
			r.Exception = &f
			continue
		}
		r.Findings = append(r.Findings, f)
	}
	sort.Slice(names, func(i, j int) bool {
		if (names[i] == "core") != (names[j] == "core") {
			return names[i] == "core"
		}
		return names[i] < names[j]
	})
	rep := &Report{}
	for _, n := range names {
		finding.Sort(by[n].Findings)
		rep.Scopes = append(rep.Scopes, *by[n])
	}
	return rep
}
