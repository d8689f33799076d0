// Package metrics keeps the portal's Prometheus metrics: requests by route
// and status, password operations by channel and result, self-service
// verifications and blocks, the directory's write latency and reachability,
// mail sends, the audit chain and database errors.
//
// The services do not import it: each declares the small recorder it calls
// (writeback.Recorder, selfservice.Recorder, …) with a no-op default, and
// *Metrics implements them. It registers on the registry it is given, never
// on Prometheus's global one.
package metrics

import (
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/store"
)

const namespace = "writeback"

// Label values of writeback_password_operations_total.
const (
	ChannelSelfService = "self-service"
	ChannelHelpdesk    = "helpdesk"
	ChannelCommandLine = "command-line"
)

// Metrics holds every collector of the portal.
type Metrics struct {
	requests     *prometheus.CounterVec
	latency      *prometheus.HistogramVec
	operations   *prometheus.CounterVec
	verification *prometheus.CounterVec
	blocks       prometheus.Counter
	writes       *prometheus.HistogramVec
	reachable    *prometheus.GaugeVec
	mail         *prometheus.CounterVec
	dbErrors     prometheus.Counter

	mu      sync.Mutex
	servers map[string]bool // the servers of the last reading, to drop those no longer configured
}

// New builds the metrics and registers them, with the Go runtime's and the
// process's collectors, on reg.
func New(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "http_requests_total",
			Help: "HTTP requests by route pattern (never the path), method and status code."}, []string{"route", "method", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Name: "http_request_duration_seconds",
			Help:    "Time to answer an HTTP request, by route pattern and method.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}}, []string{"route", "method"}),
		operations: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "password_operations_total",
			Help: "Password resets, unlocks and changes by channel (self-service, helpdesk, command-line) and result (success, failure), as the audit log records them."},
			[]string{"operation", "channel", "result"}),
		verification: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "selfservice_verifications_total",
			Help: "Self-service verification attempts by method (email, app, questions) and result (success, wrong, blocked)."}, []string{"method", "result"}),
		blocks: prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "selfservice_blocks_total",
			Help: "Accounts blocked from self-service after too many wrong verifications."}),
		writes: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Name: "directory_write_duration_seconds",
			Help:    "Time of the directory operation behind a reset, unlock or change, by operation and mode (direct, agents).",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}}, []string{"operation", "mode"}),
		reachable: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Name: "directory_server_up",
			Help: "1 when the last health check reached the directory server, 0 when it could not."}, []string{"server"}),
		mail: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "mail_messages_total",
			Help: "E-mail messages handed to the mail server, by result (success, failure)."}, []string{"result"}),
		dbErrors: prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "database_errors_total",
			Help: "Database statements, transactions and commits that failed (not counting cancelled requests)."}),
		servers: map[string]bool{},
	}
	reg.MustRegister(m.requests, m.latency, m.operations, m.verification, m.blocks, m.writes, m.reachable, m.mail, m.dbErrors,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// The results every series can have are there from the start at 0, so
	// that a rate or an alert on them works before the first one happens.
	for _, op := range []string{"reset", "unlock", "change"} {
		for _, ch := range []string{ChannelSelfService, ChannelHelpdesk, ChannelCommandLine} {
			if op == "change" && ch != ChannelSelfService {
				continue
			}
			for _, r := range []string{audit.Success, audit.Failure} {
				m.operations.WithLabelValues(op, ch, r)
			}
		}
	}
	for _, r := range []string{"success", "failure"} {
		m.mail.WithLabelValues(r)
	}
	return m
}

// Request counts one answered request; route is chi's route pattern.
func (m *Metrics) Request(route, method string, status int, d time.Duration) {
	m.requests.WithLabelValues(route, method, strconv.Itoa(status)).Inc()
	m.latency.WithLabelValues(route, method).Observe(d.Seconds())
}

// Verification counts one self-service verification attempt.
func (m *Metrics) Verification(method, result string) {
	m.verification.WithLabelValues(method, result).Inc()
}

// MailSent counts one message handed to the mail server (err nil) or not.
func (m *Metrics) MailSent(err error) {
	r := "success"
	if err != nil {
		r = "failure"
	}
	m.mail.WithLabelValues(r).Inc()
}

// DirectoryWrite observes the time of one directory write.
func (m *Metrics) DirectoryWrite(operation, mode string, d time.Duration) {
	m.writes.WithLabelValues(operation, mode).Observe(d.Seconds())
}

// DirectoryServers records one health reading: whether each configured
// server was reached. Servers of an earlier reading that are not in this
// one (the connection changed) are dropped.
func (m *Metrics) DirectoryServers(up map[string]bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for s := range m.servers {
		if _, ok := up[s]; !ok {
			m.reachable.DeleteLabelValues(s)
		}
	}
	m.servers = map[string]bool{}
	for s, ok := range up {
		v := 0.0
		if ok {
			v = 1
		}
		m.reachable.WithLabelValues(s).Set(v)
		m.servers[s] = true
	}
}

// DatabaseError counts one failed database call (store.DB.OnError).
func (m *Metrics) DatabaseError(error) { m.dbErrors.Inc() }

// Audit counts what an audit event records: the password operations by
// channel and result, and self-service blocks. It is store.DB.OnAudit's
// callback, so only committed events count, each once.
func (m *Metrics) Audit(e store.AuditEvent) {
	if e.Activity == audit.ActivityBlockedSelfService {
		m.blocks.Inc()
		return
	}
	op, ch := Operation(e)
	if op == "" {
		return
	}
	m.operations.WithLabelValues(op, ch, e.Result).Inc()
}

// Operation names the password operation an audit event records and its
// channel; op is empty for any other event.
func Operation(e store.AuditEvent) (op, channel string) {
	switch e.Activity {
	case audit.ActivityResetSelfService:
		return "reset", ChannelSelfService
	case audit.ActivityUnlockSelfService:
		return "unlock", ChannelSelfService
	case audit.ActivityChangeSelfService:
		return "change", ChannelSelfService
	case audit.ActivityResetByAdmin:
		op = "reset"
	case audit.ActivityUnlockByAdmin:
		op = "unlock"
	default:
		return "", ""
	}
	if e.ActorType == audit.CommandLine.Type {
		return op, ChannelCommandLine
	}
	return op, ChannelHelpdesk
}
