package watch

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestOptionsDefaults: zero (and negative) fields take the defaults, the
// others are kept.
func TestOptionsDefaults(t *testing.T) {
	t.Parallel()
	def := Options{Delay: 20 * time.Millisecond, MaxDelay: 200 * time.Millisecond, MaxPaths: 50000}
	tests := []struct {
		name string
		in   Options
		want Options
	}{
		{"zero", Options{}, def},
		{"negative", Options{Delay: -1, MaxDelay: -1, MaxPaths: -1}, def},
		{"delay only", Options{Delay: time.Second}, Options{Delay: time.Second, MaxDelay: def.MaxDelay, MaxPaths: def.MaxPaths}},
		{"all set", Options{Delay: 1, MaxDelay: 2, MaxPaths: 3}, Options{Delay: 1, MaxDelay: 2, MaxPaths: 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.in.withDefaults(); got != tt.want {
				t.Errorf("%+v.withDefaults() = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

// TestBatcher runs scripts of what Run does ("add PATH", "lose REASON",
// "flush" when the timer fires, "sent" when the consumer takes the batch)
// and checks the batch waiting for the consumer afterwards.
func TestBatcher(t *testing.T) {
	t.Parallel()
	paths := func(p ...string) *Batch { return &Batch{Paths: p} }
	rescan := func(why string) *Batch { return &Batch{Rescan: true, Reason: why} }
	tests := []struct {
		name   string
		script string // steps separated by ";"
		want   *Batch // nil: no batch waits
	}{
		{"nothing", "", nil},
		{"nothing before the timer", "add /a", nil},
		{"sorted and unique", "add /b; add /a; add /b; flush", paths("/a", "/b")},
		{"taken", "add /a; flush; sent", nil},
		{"later paths wait for the timer", "add /a; flush; add /b", paths("/a")},
		// The consumer is busy: the waiting batch absorbs what follows.
		{"merged into the waiting batch", "add /a; flush; add /b; flush", paths("/a", "/b")},
		{"merged twice", "add /a; flush; add /b; flush; add /a; flush", paths("/a", "/b")},
		{"not merged once taken", "add /a; flush; sent; add /b; flush", paths("/b")},
		{"more than MaxPaths", "add /a; add /b; add /c; add /d; flush", rescan("more than 3 changed paths")},
		{"MaxPaths counts the waiting batch", "add /a; add /b; flush; add /c; add /d; flush", rescan("more than 3 changed paths")},
		{"MaxPaths reached, not exceeded", "add /a; add /b; flush; add /c; flush", paths("/a", "/b", "/c")},
		{"loss drops the paths", "add /a; lose overflow; add /b; flush", rescan("overflow")},
		{"first loss gives the reason", "lose overflow; lose error; flush", rescan("overflow")},
		{"loss replaces a waiting path batch", "add /a; flush; lose overflow; flush", rescan("overflow")},
		{"waiting rescan absorbs paths", "lose overflow; flush; add /a; flush", rescan("overflow")},
		{"waiting rescan keeps its reason", "lose overflow; flush; lose error; flush", rescan("overflow")},
		{"paths again after a rescan", "lose overflow; flush; sent; add /a; flush", paths("/a")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBatcher(Options{Delay: time.Millisecond, MaxDelay: time.Second, MaxPaths: 3})
			for _, step := range strings.Split(tt.script, ";") {
				op, arg, _ := strings.Cut(strings.TrimSpace(step), " ")
				switch op {
				case "":
				case "add":
					b.add(arg)
				case "lose":
					b.lose(arg)
				case "flush":
					b.flush()
				case "sent":
					b.sent()
				default:
					t.Fatalf("bad step %q", step)
				}
			}
			got, ready := b.next()
			switch {
			case tt.want == nil && ready:
				t.Errorf("after %q: batch %+v waits, want none", tt.script, got)
			case tt.want != nil && !ready:
				t.Errorf("after %q: no batch waits, want %+v", tt.script, *tt.want)
			case tt.want != nil && !reflect.DeepEqual(got, *tt.want):
				t.Errorf("after %q: batch %+v waits, want %+v", tt.script, got, *tt.want)
			}
		})
	}
}

// TestBatcherLoseFirst: lose reports the first loss since the last flush
// only (Run logs that one).
func TestBatcherLoseFirst(t *testing.T) {
	t.Parallel()
	b := newBatcher(Options{MaxPaths: 3})
	for i, want := range []bool{true, false, false} {
		if got := b.lose("x"); got != want {
			t.Errorf("lose #%d = %v, want %v", i+1, got, want)
		}
	}
	b.flush()
	if !b.lose("y") {
		t.Error("lose after a flush = false, want true")
	}
	b = newBatcher(Options{MaxPaths: 1})
	b.add("/a")
	b.add("/b") // more than MaxPaths: a loss
	if b.lose("x") {
		t.Error("lose after MaxPaths was exceeded = true, want false")
	}
}

// TestBatcherArm: the timer waits Delay after each event, but no longer
// than MaxDelay after the first event since the last flush.
func TestBatcherArm(t *testing.T) {
	t.Parallel()
	const ms = time.Millisecond
	b := newBatcher(Options{Delay: 20 * ms, MaxDelay: 200 * ms, MaxPaths: 100})
	t0 := time.Unix(1e9, 0)
	steps := []struct {
		at    time.Duration // event time; -1: the timer fires
		want  time.Duration
		about string
	}{
		{0, 20 * ms, "first event: Delay"},
		{10 * ms, 20 * ms, "quiet time restarts"},
		{150 * ms, 20 * ms, "MaxDelay still far"},
		{185 * ms, 15 * ms, "MaxDelay closer than Delay"},
		{200 * ms, 0, "MaxDelay reached"},
		{250 * ms, 0, "MaxDelay passed"},
		{-1, 0, "flush"},
		{300 * ms, 20 * ms, "first event after a flush: a new window"},
		{490 * ms, 10 * ms, "the new window's MaxDelay"},
	}
	for _, s := range steps {
		if s.at < 0 {
			b.flush()
			continue
		}
		b.add("/f")
		if got := b.arm(t0.Add(s.at)); got != s.want {
			t.Errorf("%s: event at %v: timer %v, want %v", s.about, s.at, got, s.want)
		}
	}
}

// TestBatcherFirst: a batch carries when its first event was read, also
// once merged with a batch the consumer has not taken yet (the daemon's
// swap window is measured on it, not on when a busy loop takes it).
func TestBatcherFirst(t *testing.T) {
	t.Parallel()
	b := newBatcher(Options{Delay: time.Millisecond, MaxDelay: time.Second, MaxPaths: 100})
	t0 := time.Unix(1e9, 0)
	b.add("/a")
	b.arm(t0)
	b.add("/a")
	b.arm(t0.Add(time.Millisecond))
	b.flush()
	if got, _ := b.next(); !got.First.Equal(t0) {
		t.Errorf("First %v, want the first event's time %v", got.First, t0)
	}
	b.add("/b") // the consumer has not taken the first batch yet
	b.arm(t0.Add(10 * time.Second))
	b.flush()
	if got, _ := b.next(); !got.First.Equal(t0) || len(got.Paths) != 2 {
		t.Errorf("merged batch: First %v, paths %v; want %v and both paths", got.First, got.Paths, t0)
	}
	b.sent()
	b.add("/c")
	b.arm(t0.Add(20 * time.Second))
	b.flush()
	if got, _ := b.next(); !got.First.Equal(t0.Add(20 * time.Second)) {
		t.Errorf("next batch: First %v, want its own first event's", got.First)
	}
}
