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
	smsQueue      prometheus.Gauge
	smsSends      *prometheus.CounterVec
}

// ModemGauge is one modem's state for the modem gauges.
type ModemGauge struct {
	Name       string
	SignalDBm  float64
	Registered bool
	Ready      bool
}

// Gauges are read at scrape time; nil functions are left out.
type Gauges struct {
	// U2FKeys returns the number of security keys plugged in.
	U2FKeys func() float64
	// StoreBytes returns the LSM and value-log sizes of the store.
	StoreBytes func() (lsm, vlog float64)
	// Modems returns the state of every modem.
	Modems func() []ModemGauge
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
	m.smsQueue = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "mfad_sms_queue_depth", Help: "Text messages accepted and not yet sent.",
	})
	m.smsSends = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mfad_sms_sends_total",
		Help: "Text messages handed to the modems, by the modem that took the last attempt and the result (sent, failed, unknown).",
	}, []string{"modem", "result"})
	m.reg.MustRegister(m.smsQueue, m.smsSends)
	if g.Modems != nil {
		m.reg.MustRegister(&modemCollector{modems: g.Modems})
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

// SMSQueue sets the SMS queue depth.
func (m *Metrics) SMSQueue(depth int) {
	if m != nil {
		m.smsQueue.Set(float64(depth))
	}
}

// SMSSend counts one message handed to a modem and its result.
func (m *Metrics) SMSSend(modem, result string) {
	if m == nil {
		return
	}
	if modem == "" {
		modem = "none"
	}
	m.smsSends.WithLabelValues(modem, result).Inc()
}

var (
	modemSignalDesc = prometheus.NewDesc("mfad_modem_signal_dbm", "Received signal strength of each modem (0 when unknown).", []string{"modem"}, nil)
	modemRegDesc    = prometheus.NewDesc("mfad_modem_registered", "1 when the modem is registered on a network (home or roaming).", []string{"modem"}, nil)
	modemReadyDesc  = prometheus.NewDesc("mfad_modem_ready", "1 when the modem is ready to send.", []string{"modem"}, nil)
)

// modemCollector reads the modems' state at scrape time.
type modemCollector struct{ modems func() []ModemGauge }

func (c *modemCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- modemSignalDesc
	ch <- modemRegDesc
	ch <- modemReadyDesc
}

func (c *modemCollector) Collect(ch chan<- prometheus.Metric) {
	b := func(v bool) float64 {
		if v {
			return 1
		}
		return 0
	}
	for _, g := range c.modems() {
		ch <- prometheus.MustNewConstMetric(modemSignalDesc, prometheus.GaugeValue, g.SignalDBm, g.Name)
		ch <- prometheus.MustNewConstMetric(modemRegDesc, prometheus.GaugeValue, b(g.Registered), g.Name)
		ch <- prometheus.MustNewConstMetric(modemReadyDesc, prometheus.GaugeValue, b(g.Ready), g.Name)
	}
}
