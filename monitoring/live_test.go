//go:build e2e

package monitoring_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/valguard/valguard/internal/consultest"
	"github.com/valguard/valguard/internal/localnet"
	"github.com/valguard/valguard/internal/testnet"
	"github.com/valguard/valguard/signer"
	"github.com/valguard/valguard/supervisor"
)

// eventOnly are metric families the dashboard or the rules use that have
// no sample until an event this test does not cause: a CounterVec shows
// no series before its first labelled increment. Each is checked against
// the descriptions valguard's packages register instead, and nothing else
// may be missing from the live scrape.
var eventOnly = map[string]string{
	"valguard_signer_fence_failures_total":     "counted by reason only when a fence fails, which needs a leader",
	"valguard_signer_floor_failures_total":     "counted by reason only when a floor file write after a fence fails",
	"valguard_signer_watermark_lost_total":     "counted by reason only when a standby sees the watermark missing or lowered",
	"valguard_signer_watermark_restored_total": "counted by reason only when a new leader raises a missing or lowered watermark",
}

// generated are series Prometheus itself or the process collector adds,
// which no valguard package registers.
var generated = map[string]bool{"process_start_time_seconds": true}

// scrape returns the series names on a /metrics page (histograms as their
// _bucket, _sum and _count series).
func scrape(ctx context.Context, url string) (map[string]bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	names := map[string]bool{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		if i := strings.IndexAny(line, "{ "); i > 0 {
			names[line[:i]] = true
		}
	}
	return names, sc.Err()
}

// recorder is a Registerer that keeps what is registered with it.
type recorder struct{ cs []prometheus.Collector }

func (r *recorder) Register(c prometheus.Collector) error   { r.cs = append(r.cs, c); return nil }
func (r *recorder) MustRegister(cs ...prometheus.Collector) { r.cs = append(r.cs, cs...) }
func (r *recorder) Unregister(prometheus.Collector) bool    { return false }

// registeredFamilies returns the metric family names the supervisor and
// the signer register (from their descriptions, so with or without a
// sample).
func registeredFamilies() map[string]bool {
	rec := &recorder{}
	supervisor.NewMetrics(rec, "test")
	signer.NewMetrics(rec)
	fq := regexp.MustCompile(`fqName: "([^"]+)"`)
	names := map[string]bool{}
	ch := make(chan *prometheus.Desc, 64)
	go func() {
		for _, c := range rec.cs {
			c.Describe(ch)
		}
		close(ch)
	}()
	for d := range ch {
		if m := fq.FindStringSubmatch(d.String()); m != nil {
			names[m[1]] = true
		}
	}
	return names
}

// family strips a histogram's series suffix.
func family(series string) string {
	for _, s := range []string{"_bucket", "_sum", "_count"} {
		if f, ok := strings.CutSuffix(series, s); ok {
			return f
		}
	}
	return series
}

// usedMetrics returns every metric name the dashboard and the alert rules
// select, with where each is used.
func usedMetrics(t *testing.T) map[string][]string {
	t.Helper()
	used := map[string][]string{}
	add := func(where, expr string) {
		names, err := metricNames(expr)
		if err != nil {
			t.Fatalf("%s: %v", where, err)
		}
		for _, n := range names {
			used[n] = append(used[n], where)
		}
	}
	for _, e := range dashboardExprs(t, loadDashboard(t)) {
		add("grafana-dashboard.json", e)
	}
	for name, e := range alertRules(t) {
		add("alerts.yml "+name, e)
	}
	return used
}

// TestMetricsExistOnLiveValguard starts a real valguard in the signer mode
// (whose metrics include the supervisor's) beside a real CometBFT node and
// a real Consul agent, scrapes its --metrics-addr, and checks that every
// metric the dashboard and the alert rules use is there. The replica's
// node is the HA validator of a two-validator localnet whose other
// validator is not started: the chain stays at height 0, valguard stays
// out of the election (a node without a block is not synced), and the
// node's own sign requests at height 1 are parked, which gives
// valguard_signer_requests_total its first series. The families in
// eventOnly have no sample without a fence failure and are checked
// against the registered descriptions instead.
func TestMetricsExistOnLiveValguard(t *testing.T) {
	used := usedMetrics(t)
	registered := registeredFamilies()
	for name, where := range used {
		if !registered[family(name)] && !generated[name] {
			t.Errorf("%s (used in %v) is registered by neither the supervisor nor the signer", name, where)
		}
	}
	for name := range eventOnly {
		if !registered[name] {
			t.Errorf("event-only %s is not registered", name)
		}
	}
	if t.Failed() {
		return
	}

	bin, err := localnet.CometBFTBinary()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	agent := consultest.Start(t)
	dir := t.TempDir()
	net, err := localnet.Create(t.Context(), localnet.Config{Dir: filepath.Join(dir, "net"), Binary: bin, Validators: 2, Replicas: 1})
	if err != nil {
		t.Fatal(err)
	}
	valguard := filepath.Join(dir, "valguard")
	if out, err := exec.Command("go", "build", "-o", valguard, "../cmd/valguard").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	metrics := fmt.Sprintf("127.0.0.1:%d", testnet.FreePort(t))
	logPath := filepath.Join(dir, "valguard.log")
	p, err := localnet.StartProcess(t.Context(), logPath, []string{"CREDENTIALS_DIRECTORY="}, valguard, "run",
		"--sign-mode", "signer", "--node", "cometbft", "--node-home", net.ReplicaHomes[0], "--node-binary", bin,
		"--validator-key", net.ValidatorKey, "--consul-url", "http://"+agent.Addr, "--replica-id", "a",
		"--metrics-addr", metrics, "--log-format", "json", "--max-block-age", "0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Stop(20 * time.Second); err != nil {
			t.Errorf("stop valguard: %v", err)
		}
		if t.Failed() {
			data, _ := os.ReadFile(logPath)
			t.Logf("valguard log:\n%s", data)
		}
	})

	start := time.Now()
	var missing []string
	var got map[string]bool
	for time.Since(start) < 60*time.Second {
		if p.Exited() {
			t.Fatal("valguard exited")
		}
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		got, err = scrape(ctx, "http://"+metrics+"/metrics")
		cancel()
		missing = missing[:0]
		if err == nil {
			for name := range used {
				if !got[name] && eventOnly[family(name)] == "" {
					missing = append(missing, name)
				}
			}
			if len(missing) == 0 {
				break
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	slices.Sort(missing)
	if err != nil || len(missing) > 0 {
		t.Fatalf("after %s: scrape error %v; used but not on the live /metrics: %v", time.Since(start).Round(time.Millisecond), err, missing)
	}
	var live, event []string
	for name := range used {
		if got[name] {
			live = append(live, name)
		} else {
			event = append(event, name)
		}
	}
	slices.Sort(live)
	slices.Sort(event)
	t.Logf("%d metrics used; on the live /metrics after %s: %v; registered, without a sample yet: %v",
		len(used), time.Since(start).Round(time.Millisecond), live, event)
}
