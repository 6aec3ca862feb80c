package signer

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the signer's Prometheus metrics (docs/signer-mode.md §3.7, docs/monitoring.md). A nil
// *Metrics records nothing.
type Metrics struct {
	requests      *prometheus.CounterVec
	fence         prometheus.Histogram
	fenceFailures *prometheus.CounterVec
	fenceRetries  prometheus.Counter
	height        prometheus.Gauge
	round         prometheus.Gauge
	step          prometheus.Gauge
	parked        prometheus.Histogram
	connected     prometheus.Gauge
	depositions   prometheus.Counter
	panics        prometheus.Counter
	writtenBack   prometheus.Counter
	floorFailures *prometheus.CounterVec
	// restored and lost: the watermark key found missing or lowered.
	restored *prometheus.CounterVec
	lost     *prometheus.CounterVec
	// races and refusals: the leaderless policy's check-and-set races, and
	// refused requests by kind (both policies).
	races    *prometheus.CounterVec
	refusals *prometheus.CounterVec
}

// NewMetrics creates the signer's metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "valguard_signer_requests_total",
			Help: "Sign requests of the own node by type (proposal, prevote, precommit) and result (signed, reserved, refused, parked).",
		}, []string{"type", "result"}),
		fence: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "valguard_signer_fence_duration_seconds",
			Help:    "Time of each fence transaction (lock session check plus watermark check-and-set), failed ones included.",
			Buckets: []float64{0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024},
		}),
		fenceFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "valguard_signer_fence_failures_total",
			Help: "Fences that failed by reason: timeout, canceled, error (each demotes) or unknown (Consul did not say in time; the request parks and the leader stays), moved (an own earlier fence applied late; adopted, the request decided again).",
		}, []string{"reason"}),
		fenceRetries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "valguard_signer_fence_retries_total",
			Help: "Fence transactions sent again after an unknown outcome that a read of the watermark showed not applied (Consul between two leaders, a timeout).",
		}),
		height: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "valguard_signer_watermark_height",
			Help: "Height of the watermark in memory.",
		}),
		round: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "valguard_signer_watermark_round",
			Help: "Round of the watermark in memory.",
		}),
		step: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "valguard_signer_watermark_step",
			Help: "Step of the watermark in memory (1 propose, 2 prevote, 3 precommit).",
		}),
		parked: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "valguard_signer_parked_seconds",
			Help:    "Time a parked sign request waited before its reply (a signature, a refusal or a ping reply at the park hold).",
			Buckets: []float64{0.001, 0.004, 0.016, 0.064, 0.25, 0.5, 1, 2, 3, 4, 5},
		}),
		connected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "valguard_signer_node_connected",
			Help: "1 while the own node's privval connection is up.",
		}),
		depositions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "valguard_signer_depositions_total",
			Help: "Times this standby destroyed the holder's session because its own node stayed parked.",
		}),
		panics: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "valguard_signer_panics_total",
			Help: "Requests whose handling panicked: each got an error reply and no signature; a panic under the signing mutex also demotes the leader.",
		}),
		writtenBack: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "valguard_signer_watermark_written_back_total",
			Help: "Times the leader found the watermark key absent in Consul at a fence and wrote back the watermark it held in memory (create-only, under the lock) before fencing on.",
		}),
		floorFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "valguard_signer_floor_failures_total",
			Help: "Floor file writes that failed, by reason: timeout (not ended within the floor timeout: a hung disk) or error. After a fence, the request is refused and the leader steps down.",
		}, []string{"reason"}),
	}
	reg.MustRegister(m.requests, m.fence, m.fenceFailures, m.fenceRetries, m.height, m.round, m.step, m.parked, m.connected, m.depositions, m.panics, m.writtenBack, m.floorFailures)
	m.restored = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "valguard_signer_watermark_restored_total",
		Help: "Times a new leader raised the watermark it found in Consul above everything that may have been signed and wrote it back, by reason: missing (no key), lowered (below what this replica knew was signed), restart_mode (published by a key-file leader).",
	}, []string{"reason"})
	m.lost = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "valguard_signer_watermark_lost_total",
		Help: "Times this replica saw the watermark key in Consul go missing or below the watermark it held, by reason (missing, lowered); it kept its own.",
	}, []string{"reason"})
	m.races = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "valguard_signer_races_total",
		Help: "Leaderless policy: new signatures this replica committed to the sign record (won), and check-and-sets refused because another replica's signature was there first (lost; the request was then re-served or refused).",
	}, []string{"result"})
	m.refusals = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "valguard_signer_refusals_total",
		Help: "Sign requests refused, by reason: regression, conflict, no_bytes, chain, extension, not_signing (leaderless, drained or not synced), no_holder, malformed, failed.",
	}, []string{"reason"})
	reg.MustRegister(m.restored, m.lost, m.races, m.refusals)
	return m
}

func (m *Metrics) raced(won bool) {
	if m == nil {
		return
	}
	r := "lost"
	if won {
		r = "won"
	}
	m.races.WithLabelValues(r).Inc()
}

func (m *Metrics) refused(kind string) {
	if m != nil && kind != "" {
		m.refusals.WithLabelValues(kind).Inc()
	}
}

func (m *Metrics) restoredWatermark(reason string) {
	if m != nil {
		m.restored.WithLabelValues(reason).Inc()
	}
}

func (m *Metrics) lostWatermark(reason string) {
	if m != nil {
		m.lost.WithLabelValues(reason).Inc()
	}
}

// SetConnected sets valguard_signer_node_connected.
func (m *Metrics) SetConnected(up bool) {
	if m == nil {
		return
	}
	v := 0.0
	if up {
		v = 1
	}
	m.connected.Set(v)
}

func (m *Metrics) request(typ, result string) {
	if m != nil {
		m.requests.WithLabelValues(typ, result).Inc()
	}
}

func (m *Metrics) fenced(d time.Duration, failure string) {
	if m == nil {
		return
	}
	m.fence.Observe(d.Seconds())
	if failure != "" {
		m.fenceFailures.WithLabelValues(failure).Inc()
	}
}

func (m *Metrics) fenceRetried(n int) {
	if m != nil && n > 0 {
		m.fenceRetries.Add(float64(n))
	}
}

func (m *Metrics) watermark(w Watermark) {
	if m != nil {
		m.height.Set(float64(w.Height))
		m.round.Set(float64(w.Round))
		m.step.Set(float64(w.Step))
	}
}

func (m *Metrics) parkedFor(d time.Duration) {
	if m != nil {
		m.parked.Observe(d.Seconds())
	}
}

func (m *Metrics) deposed() {
	if m != nil {
		m.depositions.Inc()
	}
}

func (m *Metrics) panicked() {
	if m != nil {
		m.panics.Inc()
	}
}

func (m *Metrics) wroteBack() {
	if m != nil {
		m.writtenBack.Inc()
	}
}

func (m *Metrics) floorFailed(reason string) {
	if m != nil {
		m.floorFailures.WithLabelValues(reason).Inc()
	}
}
