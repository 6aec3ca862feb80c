package election_test

import (
	"context"
	"testing"
	"time"

	"github.com/valguard/valguard/election"
	"github.com/valguard/valguard/internal/consultest"
)

// TestTakeDelayOrdersTheTake: two standbys wait on a lock that its holder
// releases cleanly; the one with the shorter TakeDelay (the fresher node)
// takes it, whichever was asked to acquire first, and the other blocks on
// the held key.
func TestTakeDelayOrdersTheTake(t *testing.T) {
	t.Parallel()
	agent := consultest.Start(t)
	for _, fresherFirst := range []bool{true, false} {
		t.Run(map[bool]string{true: "fresher asks first", false: "fresher asks last"}[fresherFirst], func(t *testing.T) {
			t.Parallel()
			takeInOrder(t, agent, fresherFirst)
		})
	}
}

// takeInOrder runs the case on a validator of its own.
func takeInOrder(t *testing.T, agent *consultest.Agent, fresherFirst bool) {
	v := validatorID(t)
	holder := newReplica(t, agent.Client(t), v, "holder")
	hs := holder.session(t)
	mustAcquire(t, hs, firstAcquire)
	delay := func(d time.Duration) func(*election.Config) {
		return func(c *election.Config) { c.TakeDelay = func() time.Duration { return d } }
	}
	fresh := newReplica(t, agent.Client(t), v, "fresh", delay(0))
	stale := newReplica(t, agent.Client(t), v, "stale", delay(700*time.Millisecond))
	fs, ss := fresh.session(t), stale.session(t)
	ctx, cancel := context.WithCancel(context.Background())
	var chf, chs <-chan acquireResult
	if fresherFirst {
		chf = acquireAsync(ctx, fs)
		time.Sleep(100 * time.Millisecond)
		chs = acquireAsync(ctx, ss)
	} else {
		chs = acquireAsync(ctx, ss)
		time.Sleep(100 * time.Millisecond)
		chf = acquireAsync(ctx, fs)
	}
	time.Sleep(300 * time.Millisecond) // both wait on the held key
	cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
	if err := hs.Close(cctx, nil); err != nil {
		t.Fatalf("close the holder: %v", err)
	}
	ccancel()
	if r := waitResult(t, chf, 5*time.Second, "fresh standby"); r.err != nil {
		t.Fatalf("fresh standby (asked first: %v): %v", fresherFirst, r.err)
	}
	select {
	case r := <-chs:
		t.Fatalf("the stale standby's Acquire returned too (%v) while the fresh one holds the lock", r.err)
	case <-time.After(time.Second):
	}
	if l := leader(t, fresh.e); l == nil || l.ReplicaID != "fresh" {
		t.Fatalf("leader %+v, want fresh", l)
	}
	cancel()
	<-chs
}
