package election_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/valguard/valguard/election"
	"github.com/valguard/valguard/internal/consultest"
)

func TestExactlyOneReplicaLeads(t *testing.T) {
	t.Parallel()
	agent := consultest.Start(t)
	v := validatorID(t)
	ra, rb := newReplica(t, agent.Client(t), v, "a"), newReplica(t, agent.Client(t), v, "b")
	sa, sb := ra.session(t), rb.session(t)

	start := time.Now()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cha, chb := acquireAsync(ctx, sa), acquireAsync(ctx, sb)

	var (
		winner, loser     *election.Session
		winnerID          string
		loserCh           <-chan acquireResult
		first             acquireResult
		firstAcquireLimit = firstAcquire
	)
	select {
	case first = <-cha:
		winner, loser, winnerID, loserCh = sa, sb, "a", chb
	case first = <-chb:
		winner, loser, winnerID, loserCh = sb, sa, "b", cha
	case <-time.After(firstAcquireLimit):
		t.Fatalf("no Acquire returned within %s", firstAcquireLimit)
	}
	if first.err != nil {
		t.Fatalf("first Acquire to return: %v", first.err)
	}
	select {
	case r := <-loserCh:
		t.Fatalf("second replica's Acquire returned too (err %v) while the first holds the lock", r.err)
	case <-time.After(2 * time.Second):
	}
	if !winner.Leader() || loser.Leader() {
		t.Fatalf("Leader(): winner %v, loser %v; want true, false", winner.Leader(), loser.Leader())
	}

	info := leader(t, rb.e)
	if info == nil {
		t.Fatal("Election.Leader reports no holder")
	}
	if info.ReplicaID != winnerID || info.Hostname != "host-"+winnerID || info.Session != winner.ID() {
		t.Errorf("Election.Leader = %+v, want replica %s, hostname host-%s, session %s", info, winnerID, winnerID, winner.ID())
	}
	if info.Since.Before(start.Add(-time.Second)) || info.Since.After(first.at.Add(time.Second)) {
		t.Errorf("Since %s not between test start %s and acquisition %s", info.Since, start, first.at)
	}

	cancel()
	r := waitResult(t, loserCh, 2*time.Second, "waiting replica after cancel")
	if !errors.Is(r.err, context.Canceled) {
		t.Fatalf("cancelled Acquire returned %v, want context.Canceled", r.err)
	}
	if loser.Err() != nil {
		t.Errorf("cancelled Acquire ended the session: %v", loser.Err())
	}
}

func TestCloseHandsOverWithoutLockDelay(t *testing.T) {
	t.Parallel()
	agent := consultest.Start(t)
	v := validatorID(t)
	ra, rb := newReplica(t, agent.Client(t), v, "a"), newReplica(t, agent.Client(t), v, "b")
	sa := ra.session(t)
	mustAcquire(t, sa, firstAcquire)
	sb := rb.session(t)
	chb := acquireAsync(context.Background(), sb)
	select {
	case r := <-chb:
		t.Fatalf("standby acquired while the leader holds the lock (err %v)", r.err)
	case <-time.After(500 * time.Millisecond): // let the standby settle into its blocking query
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	closeStart := time.Now()
	if err := sa.Close(ctx, []byte("final-42")); err != nil {
		t.Fatalf("leader Close: %v", err)
	}
	r := waitResult(t, chb, 2*time.Second, "standby after leader Close")
	if r.err != nil {
		t.Fatalf("standby Acquire: %v", r.err)
	}
	handover := r.at.Sub(closeStart)
	t.Logf("release to acquire: %s (lock-delay %s and the unclean-takeover wait not applied)", handover, lockDelay)
	if handover >= 2*time.Second {
		t.Errorf("standby acquired %s after Close began, want under 2s", handover)
	}
	if n := rb.unclean.Load(); n != 0 {
		_, why := rb.lastUnclean()
		t.Errorf("standby reported an unclean takeover after a clean release: %s", why)
	}

	if !errors.Is(sa.Err(), election.ErrClosed) || sa.Leader() {
		t.Errorf("closed leader: Err %v, Leader %v; want ErrClosed, false", sa.Err(), sa.Leader())
	}
	if err := sa.Close(ctx, nil); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if info := leader(t, ra.e); info == nil || info.ReplicaID != "b" || info.Session != sb.ID() {
		t.Errorf("Election.Leader after hand-over = %+v, want replica b", info)
	}
	if w := watermark(t, rb.e); string(w) != "final-42" {
		t.Errorf("Watermark after Close with final = %q, want %q", w, "final-42")
	}
}

func TestPublishOnlyByLockHolder(t *testing.T) {
	t.Parallel()
	agent := consultest.Start(t)
	v := validatorID(t)
	ra, rb := newReplica(t, agent.Client(t), v, "a"), newReplica(t, agent.Client(t), v, "b")
	if w := watermark(t, ra.e); w != nil {
		t.Fatalf("Watermark before any publish = %q, want nil", w)
	}
	sa, sb := ra.session(t), rb.session(t)
	mustAcquire(t, sa, firstAcquire)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := sa.Publish(ctx, []byte("height=10")); err != nil {
		t.Fatalf("leader Publish: %v", err)
	}
	if w := watermark(t, rb.e); string(w) != "height=10" {
		t.Fatalf("Watermark = %q, want height=10", w)
	}

	err := sb.Publish(ctx, []byte("height=99"))
	if !errors.Is(err, election.ErrLockTaken) {
		t.Fatalf("standby Publish: err = %v, want ErrLockTaken", err)
	}
	if w := watermark(t, rb.e); string(w) != "height=10" {
		t.Fatalf("Watermark after refused publish = %q, want height=10", w)
	}
	if sb.Err() != nil {
		t.Errorf("refused publish ended the standby's session: %v", sb.Err())
	}

	if err := sa.Close(ctx, nil); err != nil {
		t.Fatalf("leader Close: %v", err)
	}
	if err := sa.Publish(ctx, []byte("height=11")); !errors.Is(err, election.ErrClosed) {
		t.Fatalf("Publish after Close: err = %v, want ErrClosed", err)
	}
	if w := watermark(t, rb.e); !bytes.Equal(w, []byte("height=10")) {
		t.Fatalf("Watermark after publish on a closed session = %q, want height=10", w)
	}
}

func TestAcquireEndsWithContextOrClose(t *testing.T) {
	t.Parallel()
	agent := consultest.Start(t)
	v := validatorID(t)
	ra, rb := newReplica(t, agent.Client(t), v, "a"), newReplica(t, agent.Client(t), v, "b")
	sa, sb := ra.session(t), rb.session(t)
	mustAcquire(t, sa, firstAcquire)

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := sb.Acquire(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Acquire with a 300ms deadline: err = %v, want DeadlineExceeded", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("Acquire returned %s after its 300ms deadline began, want under 1s", took)
	}

	cctx, ccancel := context.WithCancel(context.Background())
	ch := acquireAsync(cctx, sb)
	time.AfterFunc(200*time.Millisecond, ccancel)
	if r := waitResult(t, ch, 2*time.Second, "cancelled Acquire"); !errors.Is(r.err, context.Canceled) {
		t.Fatalf("cancelled Acquire: err = %v, want context.Canceled", r.err)
	}

	ch = acquireAsync(context.Background(), sb)
	closeCtx, closeCancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer closeCancel()
	if err := sb.Close(closeCtx, nil); err != nil {
		t.Fatalf("standby Close: %v", err)
	}
	if r := waitResult(t, ch, 2*time.Second, "Acquire on a closed session"); !errors.Is(r.err, election.ErrClosed) {
		t.Fatalf("Acquire on a session closed meanwhile: err = %v, want ErrClosed", r.err)
	}
	if !sa.Leader() {
		t.Error("leader lost the lock while a standby gave up")
	}
}

func TestLeaseOutlivesTTLWhileRenewing(t *testing.T) {
	t.Parallel()
	agent := consultest.Start(t)
	client, rec := recordingClient(t, agent.Addr)
	r := newReplica(t, client, validatorID(t), "a")
	s := r.session(t)
	mustAcquire(t, s, firstAcquire)
	acquired := time.Now()

	hold := ttl + 2*time.Second
	select {
	case <-s.Done():
		t.Fatalf("Done closed while renewing: %v", s.Err())
	case <-time.After(hold):
	}
	if !s.Leader() {
		t.Fatal("Leader() false after holding past the TTL")
	}
	// Against the test's own record of when the last answered renew was
	// handed to the transport: the code reads its clock just before.
	cfg := r.e.Config()
	sent, calls := rec.lastRenew()
	if !sent.After(acquired) {
		t.Fatalf("no successful renew seen by the transport in %s (%d renew calls)", hold, calls)
	}
	want := sent.Add(cfg.TTL - cfg.StopMargin)
	if d := s.Deadline().Sub(want); d > 0 || d < -50*time.Millisecond {
		t.Errorf("Deadline() = last renew sent + TTL − StopMargin %+v, want within [-50ms, 0]", d)
	}
	if n, want := r.renews.Load(), int32(hold/cfg.RenewInterval)-1; n < want {
		t.Errorf("OnRenew called %d times in %s, want at least %d", n, hold, want)
	}
	if n := r.cErrors.Load(); n != 0 {
		t.Errorf("OnConsulError called %d times against a healthy agent", n)
	}
	if info := leader(t, r.e); info == nil || info.Session != s.ID() {
		t.Errorf("Election.Leader = %+v, want this session", info)
	}
}
