package localnet

import (
	"testing"
	"time"
)

func TestOneSignaturePerHRS(t *testing.T) {
	t0 := time.Now()
	ev := func(r string, at, fenced time.Duration, res string, h, rd, st int64, b string) SignEvent {
		return SignEvent{Replica: r, At: t0.Add(at), Fenced: t0.Add(fenced), Result: res, HRS: [3]int64{h, rd, st}, Bytes: b, Sig: "sig-" + b}
	}
	// withSig is e with another signature of the same sign bytes (another
	// timestamp).
	withSig := func(e SignEvent, sig string) SignEvent { e.Sig = sig; return e }
	// a froze between its fence of 25/0/1 (at 1 s) and its log line (at
	// 21 s); b took over at 4 s above it: no finding.
	late := []SignEvent{
		ev("a", 21*time.Second, time.Second, "signed", 25, 0, 1, "p"),
		ev("b", 5*time.Second, 4*time.Second, "signed", 25, 0, 2, "v"),
		ev("b", 6*time.Second, 6*time.Second, "reserved", 25, 0, 2, "v"),
	}
	if n, hrs, f := OneSignaturePerHRS(late); len(f) != 0 || n != 2 || hrs != 2 {
		t.Fatalf("signed %d, hrs %d, findings %v", n, hrs, f)
	}
	// Two replicas count the same vote (same sign bytes) as their own
	// signature: one signature, no finding.
	twice := []SignEvent{
		ev("a", 1, 1, "signed", 7, 0, 3, "z"),
		ev("b", 2, 2, "signed", 7, 0, 3, "z"),
		ev("a", 3, 3, "signed", 8, 0, 1, "p"),
	}
	if n, hrs, f := OneSignaturePerHRS(twice); len(f) != 0 || n != 2 || hrs != 2 {
		t.Fatalf("the same vote counted by two replicas: signed %d, hrs %d, findings %v", n, hrs, f)
	}
	for name, evs := range map[string][]SignEvent{
		"same HRS fenced again, other bytes":                      {ev("a", 1, 1, "signed", 7, 0, 3, "z"), ev("b", 2, 2, "signed", 7, 0, 3, "w")},
		"same HRS fenced again, same bytes but another timestamp": {ev("a", 1, 1, "signed", 7, 0, 3, "z"), withSig(ev("b", 2, 2, "signed", 7, 0, 3, "z"), "other")},
		"same vote again after a higher one":                      {ev("a", 1, 1, "signed", 7, 0, 3, "z"), ev("a", 2, 2, "signed", 8, 0, 1, "p"), ev("b", 3, 3, "signed", 7, 0, 3, "z")},
		"two values at one HRS":                                   {ev("a", 1, 1, "signed", 5, 0, 2, "x"), ev("b", 2, 2, "reserved", 5, 0, 2, "y")},
		"watermark went back":                                     {ev("a", 1, 1, "signed", 6, 0, 2, "x"), ev("b", 2, 2, "signed", 5, 0, 2, "y")},
		"no sign bytes":                                           {ev("a", 1, 1, "signed", 6, 0, 2, "")},
	} {
		if _, _, f := OneSignaturePerHRS(evs); len(f) == 0 {
			t.Errorf("%s: not found", name)
		}
	}
}
