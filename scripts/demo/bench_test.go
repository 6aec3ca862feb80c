package main

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/valguard/valguard/internal/localnet"
)

func TestStats(t *testing.T) {
	for _, tc := range []struct {
		name string
		v    []float64
		want string
	}{
		{"empty", nil, noFigure},
		{"one", []float64{2}, "2.0 / 2.0 / 2.0"},
		{"odd, unsorted", []float64{3, 1, 2}, "1.0 / 2.0 / 3.0"},
		{"even: upper median", []float64{4, 1, 3, 2}, "1.0 / 3.0 / 4.0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := append([]float64{}, tc.v...)
			if got := stats(tc.v, "%.1f"); got != tc.want {
				t.Errorf("stats(%v) = %q, want %q", tc.v, got, tc.want)
			}
			for i := range in {
				if in[i] != tc.v[i] {
					t.Fatalf("stats sorted its input: %v, was %v", tc.v, in)
				}
			}
		})
	}
}

func TestPercentile(t *testing.T) {
	var hundred []float64
	for i := 100; i >= 1; i-- {
		hundred = append(hundred, float64(i))
	}
	for _, tc := range []struct {
		name string
		v    []float64
		p    float64
		want float64
	}{
		{"p50 of 1..100", hundred, 50, 50},
		{"p99 of 1..100", hundred, 99, 99},
		{"max of 1..100", hundred, 100, 100},
		{"p1 of 1..100", hundred, 1, 1},
		{"p99 of 3: the largest", []float64{1, 2, 3}, 99, 3},
		{"p50 of 3", []float64{3, 1, 2}, 50, 2},
		{"tiny p of one", []float64{7}, 0.1, 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := percentile(tc.v, tc.p); got != tc.want {
				t.Errorf("percentile(p%v) = %v, want %v", tc.p, got, tc.want)
			}
		})
	}
	if got := percentile(nil, 50); !math.IsNaN(got) {
		t.Errorf("percentile of nothing = %v, want NaN", got)
	}
}

// TestFenceLatencies reads a log shaped as valguard writes it (its node's
// output interleaved): only "sign request" events with result "signed"
// after the given time count, and a request that was parked counts for
// its fence only.
func TestFenceLatencies(t *testing.T) {
	since := time.Date(2026, 12, 2, 15, 0, 0, 0, time.UTC)
	log := strings.Join([]string{
		`I[2026-12-02|15:00:01.000] committed state module=state height=7`,
		`{"level":"info","type":"prevote","height":7,"round":0,"step":2,"result":"signed","reason":"","sign_bytes_sha256":"ab","took":1.9,"fence_took":1.2,"floor_took":0.5,"time":"2026-12-02T14:59:59.999Z","message":"sign request"}`,
		`{"level":"info","type":"prevote","height":8,"round":0,"step":2,"result":"signed","reason":"","sign_bytes_sha256":"cd","took":2.5,"fence_took":1.5,"floor_took":0.8,"time":"2026-12-02T15:00:01.250Z","message":"sign request"}`,
		`{"level":"info","type":"prevote","height":8,"round":0,"step":2,"result":"reserved","reason":"","sign_bytes_sha256":"cd","took":0.1,"time":"2026-12-02T15:00:01.260Z","message":"sign request"}`,
		`{"level":"info","type":"precommit","height":8,"round":0,"step":3,"result":"parked","reason":"","took":4000,"parked":4000,"time":"2026-12-02T15:00:05.000Z","message":"sign request"}`,
		`{"level":"info","result":"signed","fence_took":9,"took":9,"time":"2026-12-02T15:00:06.000Z","message":"something else"}`,
		`{"level":"info","type":"precommit","height":8,"round":0,"step":3,"result":"signed","reason":"","sign_bytes_sha256":"ef","took":3.5,"fence_took":2.25,"floor_took":0.7,"time":"2026-12-02T15:00:06.500Z","message":"sign request"}`,
		`{"level":"info","type":"prevote","height":9,"round":0,"step":2,"result":"signed","reason":"","sign_bytes_sha256":"01","took":812.5,"parked":810,"fence_took":1.75,"floor_took":0.7,"time":"2026-12-02T15:00:07.500Z","message":"sign request"}`,
	}, "\n") + "\n"
	path := filepath.Join(t.TempDir(), "valguard-a.log")
	if err := os.WriteFile(path, []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	fence, reply := fenceLatencies([]string{path, filepath.Join(t.TempDir(), "missing.log")}, since)
	if want := []float64{1.5, 2.25, 1.75}; !equal(fence, want) {
		t.Errorf("fence = %v, want %v", fence, want)
	}
	if want := []float64{2.5, 3.5}; !equal(reply, want) {
		t.Errorf("reply = %v, want %v", reply, want)
	}
}

func equal(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestPrintBench checks the side-by-side table: each mode's figures in its
// column (restart, signer leader, signer any), a dash where a mode has no
// such figure, the rate ratios, the leaderless replicas' return.
func TestPrintBench(t *testing.T) {
	kill := time.Unix(1000, 0)
	tl := func(secs float64, missed int) timeline {
		return timeline{killAt: kill, first: signed{at: kill.Add(time.Duration(secs * float64(time.Second)))}, missed: missed,
			deposedAt: kill.Add(2100 * time.Millisecond)}
	}
	restart := modeResult{name: "restart", runs: map[string][]timeline{
		kindGraceful: {tl(1.5, 1), tl(2.2, 2), tl(1.4, 1)},
		kindHandover: {tl(2.5, 1), tl(1.8, 0)},
		kindCrash:    {tl(31, 21)},
	}, rate: blockRate{from: 10, to: 70, span: 60 * time.Second}}
	signer := modeResult{name: "signer", runs: map[string][]timeline{
		kindGraceful: {tl(0.9, 0)},
		kindHandover: {tl(1.1, 0), tl(1.0, 0)},
		kindCrash:    {tl(19.5, 12)},
		kindDepose:   {tl(2.6, 2)},
	}, fence: []float64{1, 2, 3}, reply: []float64{2, 3, 4}, rate: blockRate{from: 100, to: 172, span: 60 * time.Second}}
	back := func(t timeline, secs float64) timeline {
		t.backAt = kill.Add(time.Duration(secs * float64(time.Second)))
		return t
	}
	anyRes := modeResult{name: "any", runs: map[string][]timeline{
		kindGraceful:  {back(tl(0.4, 0), 9), back(tl(0.6, 0), 11)},
		kindAnyCrash:  {back(tl(0.7, 0), 14)},
		kindNodeCrash: {back(tl(0.5, 1), 8)},
	}, fence: []float64{4, 5, 6, 7}, reply: []float64{5, 6, 7, 8}, rate: blockRate{from: 200, to: 254, span: 60 * time.Second},
		results: map[string]int{"signed": 120, "reserved": 100, "refused": 3, "parked": 1, refusedPrefix + "below the record": 2, refusedPrefix + "not signing": 1}}
	var b strings.Builder
	printBench(&b, localnet.WiringMesh, "3 servers, raft_multiplier 1", 3, restart, signer, anyRes, nil)
	out := b.String()
	for _, want := range []string{
		"wiring mesh",
		"one Consul (3 servers, raft_multiplier 1)",
		"| graceful (SIGTERM): kill → first signature (s), min / median / max | 1.40 / 1.50 / 2.20 | 0.90 / 0.90 / 0.90 |",
		"| graceful (SIGTERM): missed heights, min / median / max | 1 / 1 / 2 | 0 / 0 / 0 |",
		"| voluntary hand-over (valguard handover --to): request → first signature (s), min / median / max | 1.80 / 2.50 / 2.50 | 1.00 / 1.10 / 1.10 |",
		"| voluntary hand-over (valguard handover --to): missed heights, min / median / max | 0 / 1 / 1 | 0 / 0 / 0 |",
		"| crash (SIGKILL), lease only: kill → first signature (s), min / median / max | 31.00 / 31.00 / 31.00 | 19.50 / 19.50 / 19.50 |",
		"| crash (SIGKILL), deposition after 2 s: kill → first signature (s), min / median / max | — | 2.60 / 2.60 / 2.60 |",
		"| 3 runs each, wiring mesh | restart mode",
		"| fence (ms), p50 / p99 / max, from the leaders' sign-request logs | — | 2.00 / 3.00 / 3.00 (3 signatures) |",
		"| blocks/s over 60 s while the validator signs |",
		"| block rate, signer mode / restart mode | — | 1.200 |",
		"1.000 (heights 10..70 in 60.0 s, 0 missed)",
		"signer mode, deposition runs: the standby deposed the leader at kill + 2.10 / 2.10 / 2.10 s",
		// the leaderless column
		"| graceful (SIGTERM): kill → first signature (s), min / median / max | 1.40 / 1.50 / 2.20 | 0.90 / 0.90 / 0.90 | 0.40 / 0.60 / 0.60 |",
		"| crash (SIGKILL), lease only: missed heights, min / median / max | 21 / 21 / 21 | 12 / 12 / 12 | — |",
		"| crash (SIGKILL), deposition after 2 s: missed heights, min / median / max | — | 2 / 2 / 2 | — |",
		"| " + kindAnyCrash + ": kill → first signature (s), min / median / max | — | — | 0.70 / 0.70 / 0.70 |",
		"| " + kindNodeCrash + ": missed heights, min / median / max | — | — | 1 / 1 / 1 |",
		"| voluntary hand-over (valguard handover --to): missed heights, min / median / max | 0 / 1 / 1 | 0 / 0 / 0 | — |",
		"| fence (ms), p50 / p99 / max, from the leaders' sign-request logs | — | 2.00 / 3.00 / 3.00 (3 signatures) | 5.00 / 7.00 / 7.00 (4 signatures) |",
		"| sign request → reply (ms), p50 / p99 / max, requests never parked | — | 3.00 / 4.00 / 4.00 (3 signatures) | 6.00 / 8.00 / 8.00 (4 signatures) |",
		"| sign requests by result over the mode | — | — | signed 120, reserved 100, refused 3 (below the record 2, not signing 1), parked 1 |",
		"| block rate, signer mode / restart mode | — | 1.200 | 0.900 |",
		"0.900 (heights 200..254 in 60.0 s, 0 missed)",
		"signer mode, --signers any (every replica signs; a check-and-set decides) |",
		"--signers any, the killed replica Validating again (started again at once after a valguard kill), kill + min / median / max: graceful 9.0 / 11.0 / 11.0 s; crash 14.0 / 14.0 / 14.0 s; node crash 8.0 / 8.0 / 8.0 s",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	for _, m := range []string{"restart", "any"} {
		if strings.Contains(out, m+" mode, deposition runs") {
			t.Errorf("a deposition line for the %s column:\n%s", m, out)
		}
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "| ") && strings.Count(line, " | ") != 3 {
			t.Errorf("a table row without 4 cells: %q", line)
		}
	}
	if strings.Contains(out, "Horcrux") {
		t.Errorf("a Horcrux column or note without a Horcrux result:\n%s", out)
	}

	// The Horcrux column: its figures in a fifth cell, a dash where it has
	// none, its note under the table.
	hx := modeResult{name: hxName, runs: map[string][]timeline{
		kindGraceful:  {tl(1.3, 1), tl(1.5, 1)},
		kindHandover:  {tl(0.6, 0)},
		kindCrash:     {tl(2.3, 1)},
		kindNodeCrash: {tl(0.5, 0)},
	}, reply: []float64{9, 10, 21}, rate: blockRate{from: 300, to: 366, span: 60 * time.Second},
		idle:   idle{rssMB: 40, cpuPct: 2.5, window: 10 * time.Second},
		safety: safety{height: 400, power: localnet.DefaultPower}}
	b.Reset()
	printBench(&b, localnet.WiringDialOut, "3 servers, raft_multiplier 1", 3, restart, signer, anyRes, &hx)
	out = b.String()
	for _, want := range []string{
		"Horcrux on a localnet of its own",
		"| 3 runs each, wiring dial-out | restart mode (key file linked, node restarted) | signer mode (remote signer, every signature fenced) | signer mode, --signers any (every replica signs; a check-and-set decides) | " + horcruxColumn + " |",
		"| --- | --- | --- | --- | --- |",
		"| graceful (SIGTERM): kill → first signature (s), min / median / max | 1.40 / 1.50 / 2.20 | 0.90 / 0.90 / 0.90 | 0.40 / 0.60 / 0.60 | 1.30 / 1.50 / 1.50 |",
		"| voluntary hand-over (valguard handover --to): request → first signature (s), min / median / max | 1.80 / 2.50 / 2.50 | 1.00 / 1.10 / 1.10 | — | 0.60 / 0.60 / 0.60 |",
		"| crash (SIGKILL), lease only: missed heights, min / median / max | 21 / 21 / 21 | 12 / 12 / 12 | — | 1 / 1 / 1 |",
		"| crash (SIGKILL), deposition after 2 s: missed heights, min / median / max | — | 2 / 2 / 2 | — | — |",
		"| " + kindAnyCrash + ": kill → first signature (s), min / median / max | — | — | 0.70 / 0.70 / 0.70 | — |",
		"| " + kindNodeCrash + ": kill → first signature (s), min / median / max | — | — | 0.50 / 0.50 / 0.50 | 0.50 / 0.50 / 0.50 |",
		"| fence (ms), p50 / p99 / max, from the leaders' sign-request logs | — | 2.00 / 3.00 / 3.00 (3 signatures) | 5.00 / 7.00 / 7.00 (4 signatures) | — |",
		"| sign request → reply (ms), p50 / p99 / max, requests never parked | — | 3.00 / 4.00 / 4.00 (3 signatures) | 6.00 / 8.00 / 8.00 (4 signatures) | 10.00 / 21.00 / 21.00 (3 signatures) |",
		"| sign requests by result over the mode | — | — | signed 120, reserved 100, refused 3 (below the record 2, not signing 1), parked 1 | — |",
		"| block rate, signer mode / restart mode | — | 1.200 | 0.900 | — |",
		"| 1.100 (heights 300..366 in 60.0 s, 0 missed) |",
		"leading cosigner: 40.0 MB RSS, 2.50 % of a core over 10s |",
		"| heights 1..400: 0 DuplicateVoteEvidence, 0 conflicting-vote log lines, validator power 10 |",
		"Horcrux column (the rows name valguard's events",
		"horcrux elect <next id>",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table with Horcrux lacks %q:\n%s", want, out)
		}
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "| ") && strings.Count(line, " | ") != 4 {
			t.Errorf("a table row without 5 cells: %q", line)
		}
	}

	// A Horcrux run that failed early: dashes, not zeros.
	b.Reset()
	printBench(&b, localnet.WiringDialOut, "a -dev agent", 1, restart, signer, anyRes, &modeResult{name: hxName})
	out = b.String()
	for _, want := range []string{
		"| graceful (SIGTERM): missed heights, min / median / max | 1 / 1 / 2 | 0 / 0 / 0 | 0 / 0 / 0 | — |",
		"(4 signatures) | — |",
		"0 missed) | — |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table with an empty Horcrux result lacks %q:\n%s", want, out)
		}
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "| safety") && !strings.HasSuffix(line, " | — |") {
			t.Errorf("safety row with an empty Horcrux result: %q", line)
		}
		if strings.HasPrefix(line, "| valguard while leading") && !strings.HasSuffix(line, " | — |") {
			t.Errorf("idle row with an empty Horcrux result: %q", line)
		}
	}
}

// TestParseHandover reads the closing line valguard handover prints.
func TestParseHandover(t *testing.T) {
	out := "hand-over 1a2b: a → b (window 30s)\n" +
		"  +0.000s  request written at chain height 41\n" +
		"hand-over a → b done: first signature 1.234s after the request, at height 43; missed heights since the request (height 41): 1 [42]\n"
	got, err := parseHandover(out)
	if err != nil {
		t.Fatal(err)
	}
	if want := (handoverResult{secs: 1.234, first: 43, height: 41, missed: 1}); got != want {
		t.Fatalf("parseHandover = %+v, want %+v", got, want)
	}
	if _, err := parseHandover("hand-over a → b done (1.0s); the chain was not watched"); err == nil {
		t.Fatal("a hand-over without a first signature parsed")
	}
}

// TestSignResults counts sign requests by result in a time window, and
// refusals by class.
func TestSignResults(t *testing.T) {
	from := time.Date(2026, 12, 2, 15, 0, 0, 0, time.UTC)
	log := strings.Join([]string{
		`{"result":"signed","time":"2026-12-02T14:59:59.000Z","message":"sign request"}`,
		`{"result":"signed","time":"2026-12-02T15:00:01.000Z","message":"sign request"}`,
		`{"result":"reserved","time":"2026-12-02T15:00:01.100Z","message":"sign request"}`,
		`{"result":"refused","reason":"height/round/step regression: 5/0/1 is below the watermark 5/0/2","time":"2026-12-02T15:00:02.000Z","message":"sign request"}`,
		`{"result":"refused","reason":"conflicting data at 6/0/3","time":"2026-12-02T15:00:03.000Z","message":"sign request"}`,
		`{"result":"refused","reason":"this replica does not sign now (drained, not synced, or stopping); the validator's other replicas sign","time":"2026-12-02T15:00:04.000Z","message":"sign request"}`,
		`{"result":"refused","reason":"something new","time":"2026-12-02T15:00:05.000Z","message":"sign request"}`,
		`{"result":"parked","time":"2026-12-02T15:00:06.000Z","message":"sign request"}`,
		`{"result":"signed","time":"2026-12-02T15:00:11.000Z","message":"sign request"}`,
	}, "\n") + "\n"
	path := filepath.Join(t.TempDir(), "valguard-a.log")
	if err := os.WriteFile(path, []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	got := resultsCell(signResults([]string{path}, from, from.Add(10*time.Second)))
	if want := "signed 1, reserved 1, refused 4 (below the record 1, conflicting data 1, not signing 1, other 1), parked 1"; got != want {
		t.Errorf("resultsCell = %q, want %q", got, want)
	}
	if got := resultsCell(nil); got != noFigure {
		t.Errorf("resultsCell(nil) = %q, want %q", got, noFigure)
	}
}

// TestHxSignLatencies reads Horcrux's "Signed" lines with a duration in a
// time window; its replies to the sentries (no duration) do not count.
func TestHxSignLatencies(t *testing.T) {
	log := strings.Join([]string{
		`I[2026-12-07|23:55:06.000] Signed                                       chain_id=c height=27 round=0 type=prevote duration_ms=5.5`,
		`I[2026-12-07|23:55:06.623] Signed                                       chain_id=c height=28 round=0 type=prevote duration_ms=19.156`,
		`I[2026-12-07|23:55:06.653] Signed with shard                            chain_id=c height=28 round=0 step=3`,
		`I[2026-12-07|23:55:06.654] Signed                                       type=precommit chain_id=c height=28 round=0 sig=45F45EFFE165 vote_ext_sig= ts="2026-12-07 23:55:06.6 +0000 UTC"`,
		`E[2026-12-07|23:55:06.680] Failed to sign                               type=prevote chain_id=c height=29 round=0 error="x duration_ms=7"`,
		`I[2026-12-07|23:55:06.721] Signed                                       chain_id=c height=28 round=0 type=precommit duration_ms=1437.2`,
		`I[2026-12-07|23:55:08.000] Signed                                       chain_id=c height=29 round=0 type=prevote duration_ms=3`,
	}, "\n") + "\n"
	path := filepath.Join(t.TempDir(), "horcrux-1.log")
	if err := os.WriteFile(path, []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	from := time.Date(2026, 12, 7, 23, 55, 6, 500_000_000, time.Local)
	got := hxSignLatencies([]string{path, filepath.Join(t.TempDir(), "missing.log")}, from, from.Add(time.Second))
	if want := []float64{19.156, 1437.2}; !equal(got, want) {
		t.Errorf("hxSignLatencies = %v, want %v", got, want)
	}
}
