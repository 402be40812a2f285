package verify

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/integrityd/integrityd/internal/finding"
	"github.com/integrityd/integrityd/internal/fsutil"
	"github.com/integrityd/integrityd/internal/kind"
)

// Check verifies the scope's manifest and compares every file with it.
//
// It compares as it goes (issue 21): the walk hands on the files in key
// order (keyOrder), hashed by a pool of workers and put back in that
// order, and the manifest is read as a stream whose entries come in the
// same order (as Nextcloud writes them, ksorted), so the two are merged
// like sorted lists, and what is kept of a file is only its finding, if
// any. The findings are reported only once the whole manifest is read
// and its signature verified; a manifest that cannot be trusted discards
// them, and is the scope's EXCEPTION, as before. A manifest whose hashes
// are not in key order is checked the way that holds them all
// (checkWhole): the results are the same either way.
func (s *Scope) Check(ctx context.Context, t *Trust) (ScopeResult, error) {
	res, err, done := s.checkStream(ctx, t)
	if done {
		return res, err
	}
	return s.checkWhole(ctx, t)
}

// walkSlot is one file of the walk on its way through the hashing
// workers: done is closed once st (or err, ctx's) is set.
type walkSlot struct {
	f    walkedFile
	st   fileState
	err  error
	done chan struct{}
}

// orderedAhead bounds how many files the walk lists ahead of the
// comparison (with the hashing pool's queue).
const orderedAhead = 2048

// checkStream is Check by a merge of the walk with the manifest's
// stream; done is false when it cannot (the manifest's hashes are not in
// key order), and Check must use checkWhole.
func (s *Scope) checkStream(ctx context.Context, t *Trust) (res ScopeResult, err error, done bool) {
	path := s.ManifestPath()
	f, err := fsutil.OpenRegular(path)
	if err != nil {
		return ScopeResult{Scope: s.Name, Dir: s.Dir,
			Exception: invalidSignature(s.Name, MsgNoSignature, fmt.Sprintf("open %s: %v", path, cleanErr(err)))}, nil, true
	}
	defer f.Close()
	hctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// The manifest, read as a stream: its entries, in key order, in
	// batches, then the parse's result.
	batches := make(chan []expEntry, 4)
	parsedc := make(chan parsed, 1)
	go func() {
		m, err := parseManifestEmit(f, path, maxManifestSize, func(b []expEntry) {
			select {
			case batches <- b:
			case <-hctx.Done():
			}
		})
		parsedc <- parsed{m, err}
		close(batches)
	}()

	// The walk, hashed by the pool and put back in its order.
	ordered := make(chan *walkSlot, orderedAhead)
	poolErr := make(chan error, 1)
	sp := s.special()
	go func() {
		poolErr <- hashPool(hctx, &s.in.Checker,
			func(send func(*walkSlot) error) error {
				defer close(ordered)
				return s.walkTreeOrder(hctx, s.Dir, "", true, func(f walkedFile) error {
					sl := &walkSlot{f: f, done: make(chan struct{})}
					select {
					case ordered <- sl:
					case <-hctx.Done():
						return hctx.Err()
					}
					return send(sl)
				})
			},
			func(h *hasher, sl *walkSlot) {
				sl.st, sl.err = h.file(hctx, sl.f, sp)
				close(sl.done)
			})
	}()

	mg := merge{s: s, batches: batches, parsedc: parsedc}
	res = ScopeResult{Scope: s.Name, Dir: s.Dir}
	unsorted := false // the walk's keys were not in order (never expected)
	mg.next()
walk:
	for sl := range ordered {
		if mg.failed {
			break
		}
		select {
		case <-sl.done:
		case <-hctx.Done():
			break walk
		}
		if sl.err != nil {
			break // ctx is done
		}
		key := sl.f.key
		if mg.walked && key <= mg.lastKey {
			unsorted = true
			break
		}
		mg.walked, mg.lastKey = true, key
		if sl.st.skip {
			continue
		}
		res.Files++
		res.Bytes += sl.st.size
		mg.file(key, sl.st)
	}
	if !mg.failed && !unsorted && hctx.Err() == nil {
		mg.rest()
	}
	cancel() // what is left of the walk (nothing, unless it stopped)
	walkErr := <-poolErr
	pr := mg.result()

	switch {
	case errors.Is(pr.err, errUnordered):
		if ctx.Err() != nil {
			return res, ctx.Err(), true
		}
		return ScopeResult{}, nil, false
	case pr.err != nil:
		return ScopeResult{Scope: s.Name, Dir: s.Dir, Exception: invalidSignature(s.Name, MsgNoSignature, pr.err.Error())}, nil, true
	}
	if ex := pr.m.Verify(t, s.certName()); ex != nil {
		if ex.Detail == "" {
			ex.Detail = path
		} else {
			ex.Detail = path + ": " + ex.Detail
		}
		return ScopeResult{Scope: s.Name, Dir: s.Dir, Exception: ex}, nil, true
	}
	if ctx.Err() != nil {
		return ScopeResult{Scope: s.Name, Dir: s.Dir}, ctx.Err(), true
	}
	if walkErr != nil && !errors.Is(walkErr, context.Canceled) {
		f := ListException(s.Name, walkErr)
		return ScopeResult{Scope: s.Name, Dir: s.Dir, Digest: pr.m.Digest, Exception: &f}, nil, true
	}
	if unsorted {
		return ScopeResult{}, nil, false
	}
	res.Digest = pr.m.Digest
	out := s.noteDuplicateOf(mg.out, mg.infoSt, mg.infoOK, mg.infoE, mg.infoExp)
	finding.Sort(out)
	res.Findings = out
	return res, nil, true
}

// parsed is the result of the manifest's parse.
type parsed struct {
	m   *Manifest
	err error
}

// merge compares the walk's files, in key order, with the manifest's
// entries, in key order, as compareSeen compares a map of them with a
// sorted slice.
type merge struct {
	s       *Scope
	batches <-chan []expEntry
	parsedc <-chan parsed

	batch    []expEntry // the rest of the last batch
	head     expEntry   // the next entry, when haveHead
	haveHead bool
	ended    bool // the manifest is read: parsed is its result
	parsed   parsed
	failed   bool // the manifest's parse failed: nothing more is compared

	walked  bool
	lastKey string
	out     []finding.Finding
	badDirs []string // keys ("dir/") of directories that could not be read

	// What the walk found of info.xml, and its entry (noteDuplicateOf).
	infoSt  fileState
	infoOK  bool
	infoE   expEntry
	infoExp bool
}

// next moves head to the manifest's next entry that the scope checks.
func (m *merge) next() {
	for {
		for len(m.batch) > 0 {
			e := m.batch[0]
			m.batch = m.batch[1:]
			if m.s.expects(e.key) {
				m.head, m.haveHead = e, true
				if e.key == infoXML {
					m.infoE, m.infoExp = e, true
				}
				return
			}
		}
		m.haveHead = false
		if m.ended {
			return
		}
		b, ok := <-m.batches
		if !ok {
			m.ended = true
			m.parsed = <-m.parsedc
			m.failed = m.parsed.err != nil
			continue
		}
		m.batch = b
	}
}

// upTo reports as missing the entries before key (not below a directory
// that could not be read).
func (m *merge) upTo(key string) {
	for m.haveHead && m.head.key < key {
		if !underAny(m.head.key, m.badDirs) {
			m.out = append(m.out, missing(m.s.Name, m.head))
		}
		m.next()
	}
}

// file compares the walk's file key (not skipped) with the manifest.
func (m *merge) file(key string, st fileState) {
	m.upTo(key)
	if strings.HasSuffix(key, "/") {
		m.badDirs = append(m.badDirs, key)
		m.out = append(m.out, finding.Finding{Scope: m.s.Name, Kind: kind.Exception, Path: strings.TrimSuffix(key, "/"),
			Class: ReadErrorClass, Message: st.err.Error()})
		return
	}
	e, ok := m.head, m.haveHead && m.head.key == key
	if ok {
		m.next()
	} else {
		e = expEntry{}
	}
	if key == infoXML {
		m.infoSt, m.infoOK = st, true
	}
	if st.deferred {
		return // not hashed now: the caller checks it apart
	}
	m.out = judge(m.out, m.s.Name, key, st, e, ok)
}

// rest reports the entries after the walk's last file as missing.
func (m *merge) rest() {
	for m.haveHead {
		if !underAny(m.head.key, m.badDirs) {
			m.out = append(m.out, missing(m.s.Name, m.head))
		}
		m.next()
	}
}

// result waits for the manifest's parse and returns it.
func (m *merge) result() parsed {
	for !m.ended {
		m.batch = nil
		m.next()
	}
	return m.parsed
}
