package daemon

import (
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/integrityd/integrityd/internal/journal"
	"github.com/integrityd/integrityd/internal/kind"
)

// swapWindow is how long the names new files took are remembered: two
// within it, then the signed content, is a swap (SWAPPED). An honest
// update replaces a file once.
const swapWindow = 5 * time.Second

// swapSeen is what the loop remembers of a name new files took.
type swapSeen struct {
	n     int
	first time.Time
}

// noteEntered adds a batch's names new files took (watch.Batch.Entered)
// to what the loop remembers, dropping what is older than swapWindow;
// now is when the batch's first event was read (watch.Batch.First), not
// when a busy loop took it: the window is the changes' own.
func (sw *swapLog) noteEntered(entered map[string]int, now time.Time) {
	for p, e := range sw.seen {
		if now.Sub(e.first) > swapWindow {
			delete(sw.seen, p)
		}
	}
	for p, n := range entered {
		e, ok := sw.seen[p]
		if !ok {
			if sw.seen == nil {
				sw.seen = map[string]swapSeen{}
			}
			e.first = now
		}
		e.n += n
		sw.seen[p] = e
	}
}

// checkSwaps alerts, after a batch was checked, for every signed file
// that two or more new files took the name of within swapWindow and that
// is at its signed content now: the content in between (a backdoor PHP
// may have compiled into opcache) is gone, the swap is the evidence.
func (l *loop) checkSwaps(entered map[string]int) {
	for p := range entered {
		n := l.swaps.swapped(p)
		if n < 2 {
			continue
		}
		t, ok, _, _ := l.cat.locate(p)
		if !ok || t.scope.exp == nil || !t.scope.exp.Has(t.key) || !t.scope.settle.IsZero() || t.scope.next != nil {
			continue // not signed, or held (an update: its own rules)
		}
		if l.rec.findings.get(t.scope.sc.Name, t.key) != nil {
			continue // a finding of its own says what is wrong
		}
		l.swaps.forget(p)
		who, fields := "", []zap.Field(nil)
		if l.cfg.WhoData {
			who, fields = l.rep.whoAt(p)
		}
		msg := fmt.Sprintf("SWAPPED %s %s%s: replaced %d times within %s and back at its signed content; other code was in its place in between (PHP may have compiled it: restart php-fpm)",
			journal.Token(t.scope.sc.Name), journal.Token(t.key), who, n, swapWindow)
		l.log.Warn(msg, append(fields, zap.String("message_id", kind.IDSwapped), zap.String("integrity_kind", "SWAPPED"),
			zap.String("integrity_scope", t.scope.sc.Name), zap.String("integrity_path", t.key), zap.Int("integrity_count", n))...)
	}
}

// swapped is how many new files took the name p within swapWindow.
func (sw *swapLog) swapped(p string) int { return sw.seen[p].n }

// forget forgets the swaps of p (alerted).
func (sw *swapLog) forget(p string) { delete(sw.seen, p) }
