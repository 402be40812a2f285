package daemon

import (
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/integrityd/integrityd/internal/kind"
	"github.com/integrityd/integrityd/internal/version"
)

// Metrics are the daemon's Prometheus metrics. Counters count events;
// the rest is read from the latest snapshot at each scrape. Every series
// carries the install's root as label "root", so that the instances of a
// host stay apart (through one node_exporter textfile directory, or one
// Prometheus job); no other file path is ever a label.
type Metrics struct {
	Registry        *prometheus.Registry
	alerts          *prometheus.CounterVec
	fullScans       prometheus.Counter
	fullScanSeconds prometheus.Histogram
	eventsLost      prometheus.Counter
	manifestFails   prometheus.Counter
	d               *Daemon
}

func newMetrics(d *Daemon) *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		alerts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "integrityd_alerts_total", Help: "Alerts logged, by kind of finding.",
		}, []string{"kind"}),
		fullScans: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "integrityd_full_scans_total", Help: "Full scans of every scope.",
		}),
		fullScanSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "integrityd_full_scan_duration_seconds", Help: "Duration of full scans.",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 14),
		}),
		eventsLost: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "integrityd_watcher_overflows_total", Help: "Times file events were lost (queue overflow, watcher error) and everything was rescanned.",
		}),
		manifestFails: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "integrityd_manifest_verification_failures_total", Help: "Manifest loads that ended in an EXCEPTION.",
		}),
		d: d,
	}
	for _, k := range kind.All() {
		m.alerts.WithLabelValues(string(k))
	}
	buildInfo := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "integrityd_build_info", Help: "Build information.",
		ConstLabels: prometheus.Labels{"version": version.String(), "goversion": runtime.Version()},
	})
	buildInfo.Set(1)
	reg := prometheus.WrapRegistererWith(prometheus.Labels{"root": d.cfg.Root}, m.Registry)
	reg.MustRegister(m.alerts, m.fullScans, m.fullScanSeconds, m.eventsLost, m.manifestFails, buildInfo, stateCollector{d})
	return m
}

// Metrics returns the daemon's metrics.
func (d *Daemon) Metrics() *Metrics { return d.metrics }

var (
	descFindings = prometheus.NewDesc("integrityd_findings", "Current findings, by kind and scope; only kinds and scopes that have some.", []string{"kind", "scope"}, nil)
	descAll      = prometheus.NewDesc("integrityd_findings_all", "Current findings, all kinds and scopes (0 when clean).", nil, nil)
	descFiles    = prometheus.NewDesc("integrityd_watched_files", "Files listed by the verified manifests.", nil, nil)
	descDirs     = prometheus.NewDesc("integrityd_watched_directories", "Directories with an inotify watch.", nil, nil)
	descScopes   = prometheus.NewDesc("integrityd_scopes", "Scopes checked (core and apps).", nil, nil)
	descLastScan = prometheus.NewDesc("integrityd_last_full_scan_timestamp_seconds", "When the last full scan started.", nil, nil)
	descDegraded = prometheus.NewDesc("integrityd_watch_degraded", "1 when some directories cannot be watched.", nil, nil)
	descTrust    = prometheus.NewDesc("integrityd_trust_anchor_mismatch", "1 while the install's resources/codesigning/root.crt differs from the trust anchors in use (built in or pinned).", nil, nil)
)

// stateCollector reads the daemon's state at scrape time.
type stateCollector struct{ d *Daemon }

func (c stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descFindings, descAll, descFiles, descDirs, descScopes, descLastScan, descDegraded, descTrust} {
		ch <- d
	}
}

func (c stateCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.d.snap.Load()
	// Only the kinds and scopes with findings: a hoster's hundred installs
	// each with some hundred zero series (every kind by every scope) cost
	// a Prometheus for nothing; integrityd_findings_all is the total.
	counts := map[[2]string]int{}
	all := 0
	for scope, m := range s.findings {
		for _, f := range m {
			counts[[2]string{string(f.Kind), scope}]++
			all++
		}
	}
	for k, n := range counts {
		ch <- prometheus.MustNewConstMetric(descFindings, prometheus.GaugeValue, float64(n), k[0], k[1])
	}
	ch <- prometheus.MustNewConstMetric(descAll, prometheus.GaugeValue, float64(all))
	ch <- prometheus.MustNewConstMetric(descFiles, prometheus.GaugeValue, float64(s.Files))
	ch <- prometheus.MustNewConstMetric(descScopes, prometheus.GaugeValue, float64(s.Scopes))
	if last := s.meta.LastFullScan; !last.IsZero() {
		ch <- prometheus.MustNewConstMetric(descLastScan, prometheus.GaugeValue, float64(last.UnixNano())/1e9)
	}
	dirs, degraded := s.WatchedDirs()
	ch <- prometheus.MustNewConstMetric(descDirs, prometheus.GaugeValue, float64(dirs))
	deg := 0.0
	if degraded != "" {
		deg = 1
	}
	ch <- prometheus.MustNewConstMetric(descDegraded, prometheus.GaugeValue, deg)
	mismatch := 0.0
	if s.meta.TrustDiffers != "" {
		mismatch = 1
	}
	ch <- prometheus.MustNewConstMetric(descTrust, prometheus.GaugeValue, mismatch)
}

// scanDone records a full scan.
func (m *Metrics) scanDone(d time.Duration) {
	m.fullScans.Inc()
	m.fullScanSeconds.Observe(d.Seconds())
}
