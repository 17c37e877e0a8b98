// Package metrics holds mfad's Prometheus metrics. One *Metrics is created
// by the daemon and passed to the service and the API; every method is safe
// on a nil *Metrics (metrics disabled), so callers never check.
//
// The metrics are served at GET /metrics on the daemon's Unix socket (admin
// role) and, when metrics.listen is set, on that TCP address. No label ever
// carries a user name, code or secret: labels are method, result and route.
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the daemon's collectors, registered in their own registry.
type Metrics struct {
	reg           *prometheus.Registry
	verifications *prometheus.CounterVec
	lockouts      prometheus.Counter
	requests      *prometheus.HistogramVec
}

// Gauges are read at scrape time; nil functions are left out.
type Gauges struct {
	// U2FKeys returns the number of security keys plugged in.
	U2FKeys func() float64
	// StoreBytes returns the LSM and value-log sizes of the store.
	StoreBytes func() (lsm, vlog float64)
}

// New creates the metrics, including Go runtime and process metrics and
// build information.
func New(version string, g Gauges) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		verifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mfad_verifications_total",
			Help: "Second-factor verifications by method and result (ok, fail, locked).",
		}, []string{"method", "result"}),
		lockouts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mfad_lockouts_total",
			Help: "Lockouts started after too many failed verifications.",
		}),
		requests: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mfad_request_duration_seconds",
			Help:    "Socket API request latency by route and HTTP status.",
			Buckets: []float64{.0005, .001, .002, .005, .01, .02, .05, .1, .25, .5, 1, 5, 30},
		}, []string{"route", "code"}),
	}
	m.reg.MustRegister(m.verifications, m.lockouts, m.requests,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "mfad_build_info", Help: "Always 1; the version label says which build runs.",
		ConstLabels: prometheus.Labels{"version": version},
	}, func() float64 { return 1 }))
	if g.U2FKeys != nil {
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "mfad_u2f_keys", Help: "Security keys plugged in.",
		}, g.U2FKeys))
	}
	if g.StoreBytes != nil {
		m.reg.MustRegister(
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "mfad_store_lsm_bytes", Help: "Size of the store's LSM tree."},
				func() float64 { l, _ := g.StoreBytes(); return l }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "mfad_store_vlog_bytes", Help: "Size of the store's value log."},
				func() float64 { _, v := g.StoreBytes(); return v }),
		)
	}
	return m
}

// Verification counts one verification outcome.
func (m *Metrics) Verification(method, result string) {
	if m == nil {
		return
	}
	if method == "" {
		method = "unknown"
	}
	m.verifications.WithLabelValues(method, result).Inc()
}

// Lockout counts a lockout that started.
func (m *Metrics) Lockout() {
	if m != nil {
		m.lockouts.Inc()
	}
}

// Request records one API request.
func (m *Metrics) Request(route string, status int, d time.Duration) {
	if m != nil {
		m.requests.WithLabelValues(route, strconv.Itoa(status)).Observe(d.Seconds())
	}
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	if m == nil {
		return http.NotFoundHandler()
	}
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}
