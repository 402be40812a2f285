package watch

import (
	"fmt"
	"runtime"
	"testing"
)

// TestRingMemory bounds what a full ring holds: DefaultWriters entries
// of 80-byte paths (and as many churned through) stay under 32 MiB.
func TestRingMemory(t *testing.T) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	r := newRing(DefaultWriters)
	w := Writer{Pid: 1, Comm: "php-fpm8.2", Exe: "/usr/sbin/php-fpm8.2", UID: 33, Unit: "php8.2-fpm.service", Op: "modify"}
	for i := range 2 * DefaultWriters {
		r.put(fmt.Sprintf("p/var/www/nextcloud/apps/someapp/lib/Controller/%032d.php", i), w)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	used := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("a full ring of %d entries: %.1f MiB", r.len(), float64(used)/(1<<20))
	if r.len() != DefaultWriters || used > 32<<20 {
		t.Errorf("ring: %d entries, %d bytes", r.len(), used)
	}
	runtime.KeepAlive(r)
}
