package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/writeback/writeback/services/audit"
)

// auditChain exports the last verification of the audit chain, read when
// Prometheus scrapes: nothing before the first one (a replica that is not
// the leader runs none).
type auditChain struct {
	integrity func() audit.Integrity
	intact    *prometheus.Desc
	at        *prometheus.Desc
}

// RegisterAuditChain registers on reg the gauges of the audit chain's last
// verification as integrity (audit.Log.Integrity) returns it:
// writeback_audit_chain_intact (1 intact, 0 broken or the check failed)
// and writeback_audit_chain_verified_timestamp_seconds.
func RegisterAuditChain(reg prometheus.Registerer, integrity func() audit.Integrity) {
	reg.MustRegister(&auditChain{integrity: integrity,
		intact: prometheus.NewDesc(namespace+"_audit_chain_intact",
			"1 when the last verification of the audit log's hash chain found it intact, 0 when it found a break or could not run.", nil, nil),
		at: prometheus.NewDesc(namespace+"_audit_chain_verified_timestamp_seconds",
			"When the last verification of the audit log's hash chain ended (Unix time).", nil, nil),
	})
}

func (c *auditChain) Describe(ch chan<- *prometheus.Desc) { ch <- c.intact; ch <- c.at }

func (c *auditChain) Collect(ch chan<- prometheus.Metric) {
	in := c.integrity()
	if !in.Checked {
		return
	}
	v := 0.0
	if in.Err == "" && in.Result.OK {
		v = 1
	}
	ch <- prometheus.MustNewConstMetric(c.intact, prometheus.GaugeValue, v)
	ch <- prometheus.MustNewConstMetric(c.at, prometheus.GaugeValue, float64(in.At.UnixMilli())/1000)
}
