package supervisor

import (
	"runtime"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the supervisor's Prometheus metrics (names in docs/design.md).
type Metrics struct {
	state        *prometheus.GaugeVec
	leader       prometheus.Gauge
	restarts     prometheus.Counter
	failovers    prometheus.Counter
	height       prometheus.Gauge
	catchingUp   prometheus.Gauge
	unreaped     prometheus.Gauge
	abandoned    prometheus.Counter
	recoveries   prometheus.Counter
	stuck        prometheus.Counter
	stalled      prometheus.Gauge
	ConsulErrors prometheus.Counter
	// ConsulAddressRejected counts --consul-url addresses found at run
	// time to answer for another Consul cluster (each time one is found).
	ConsulAddressRejected prometheus.Counter

	mu      sync.Mutex
	session Session // nil when no session is held
}

// NewMetrics registers the metrics with reg. version is exported in
// valguard_build_info.
func NewMetrics(reg prometheus.Registerer, version string) *Metrics {
	m := &Metrics{
		state: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "valguard_state", Help: "1 for the state the supervisor is in, 0 for the others.",
		}, []string{"state"}),
		leader: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "valguard_leader", Help: "1 while this replica holds the lock and runs the validator.",
		}),
		restarts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "valguard_node_restarts_total", Help: "Node process starts after the first one.",
		}),
		failovers: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "valguard_failovers_total", Help: "Times this replica took over as the validator.",
		}),
		height: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "valguard_node_height", Help: "Latest block height reported by the node.",
		}),
		catchingUp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "valguard_node_catching_up", Help: "1 while the node reports it is catching up.",
		}),
		unreaped: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "valguard_node_unreaped",
			Help: "1 while a node process tree could not be killed and reaped; the lock is then left to expire, never released.",
		}),
		abandoned: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "valguard_sessions_abandoned_total",
			Help: "Sessions left to expire in Consul (TTL, then lock-delay) because the validator node could not be reaped.",
		}),
		recoveries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "valguard_signer_recovery_restarts_total",
			Help: "Signer mode: restarts of the leader's node because the chain stalled while it asked for no signature (a dropped step).",
		}),
		stuck: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "valguard_stuck_node_restarts_total",
			Help: "Restarts of a standby's node whose height stood still for --max-stall while a replica reported a higher one (consensus stopped, e.g. on a full disk).",
		}),
		ConsulErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "valguard_consul_errors_total", Help: "Failed calls to Consul.",
		}),
		stalled: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "valguard_chain_stalled",
			Help: "1 while the leader waits out a stall of the whole chain (no other replica ahead, its node still signing) instead of stepping down.",
		}),
		ConsulAddressRejected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "valguard_consul_address_rejected_total",
			Help: "--consul-url addresses found to answer for another Consul cluster than the others (never used); fix --consul-url.",
		}),
	}
	lease := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "valguard_lease_remaining_seconds",
		Help: "Seconds left before the local lease deadline of the held session; 0 without one.",
	}, m.leaseRemaining)
	build := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "valguard_build_info",
		Help:        "Always 1; labels carry the build.",
		ConstLabels: prometheus.Labels{"version": version, "goversion": runtime.Version()},
	})
	build.Set(1)
	reg.MustRegister(m.state, m.leader, m.restarts, m.failovers, m.height, m.catchingUp, m.unreaped, m.abandoned, m.recoveries, m.stuck, m.stalled, m.ConsulErrors, m.ConsulAddressRejected, lease, build)
	m.SetState(Startup)
	return m
}

// SetState sets valguard_state: 1 for s, 0 for every other state.
func (m *Metrics) SetState(s State) {
	if m == nil {
		return
	}
	for _, x := range States {
		v := 0.0
		if x == s {
			v = 1
		}
		m.state.WithLabelValues(x.String()).Set(v)
	}
	if s == Validating {
		m.leader.Set(1)
	} else {
		m.leader.Set(0)
	}
}

func (m *Metrics) setSession(s Session) {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.session = s
	m.mu.Unlock()
}

func (m *Metrics) leaseRemaining() float64 {
	m.mu.Lock()
	s := m.session
	m.mu.Unlock()
	if s == nil {
		return 0
	}
	if r := time.Until(s.Deadline()).Seconds(); r > 0 {
		return r
	}
	return 0
}

func (m *Metrics) nodeStatus(st Status) {
	if m == nil {
		return
	}
	m.height.Set(float64(st.Height))
	if st.CatchingUp {
		m.catchingUp.Set(1)
	} else {
		m.catchingUp.Set(0)
	}
}

func (m *Metrics) restart() {
	if m != nil {
		m.restarts.Inc()
	}
}

func (m *Metrics) chainStalled(on bool) {
	if m != nil {
		v := 0.0
		if on {
			v = 1
		}
		m.stalled.Set(v)
	}
}

func (m *Metrics) recovery() {
	if m != nil {
		m.recoveries.Inc()
	}
}

func (m *Metrics) stuckRestart() {
	if m != nil {
		m.stuck.Inc()
	}
}

func (m *Metrics) failover() {
	if m != nil {
		m.failovers.Inc()
	}
}

func (m *Metrics) setUnreaped(v bool) {
	if m == nil {
		return
	}
	if v {
		m.unreaped.Set(1)
	} else {
		m.unreaped.Set(0)
	}
}

func (m *Metrics) abandon() {
	if m != nil {
		m.abandoned.Inc()
	}
}
