package election_test

import (
	"context"
	"testing"
	"time"

	"github.com/valguard/valguard/internal/consultest"
)

// Deposition destroys only the session the standby saw holding the lock:
// once the lock changed hands (the stale holder released it, another
// replica took it), nothing is destroyed; while the seen holder still
// holds it, that session and no other is destroyed.
func TestDestroyStaleHolderOnlyTheSeenSession(t *testing.T) {
	t.Parallel()
	agent := consultest.Start(t)
	v := validatorID(t)
	ra := newReplica(t, agent.Client(t), v, "a", fenced)
	rb := newReplica(t, agent.Client(t), v, "b", fenced)
	rc := newReplica(t, agent.Client(t), v, "c", fenced)
	sa, sb := ra.session(t), rb.session(t)
	ctx := context.Background()

	mustAcquire(t, sa, fencedAcquire)
	seen, err := rc.e.Leader(ctx) // the standby c decides on what it saw
	if err != nil || seen == nil || seen.Session != sa.ID() {
		t.Fatalf("Leader = %+v, %v; want a's session %s", seen, err, sa.ID())
	}
	// The lock changes hands before c acts: a releases, b takes it.
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	if err := sa.Close(cctx, nil); err != nil {
		t.Fatal(err)
	}
	cancel()
	mustAcquire(t, sb, fencedAcquire)

	destroyed, err := rc.e.DestroyStaleHolder(ctx, seen.Session)
	if err != nil || destroyed {
		t.Fatalf("DestroyStaleHolder after the lock changed hands = %v, %v; want nothing destroyed", destroyed, err)
	}
	if sb.Err() != nil {
		t.Fatalf("the new holder's session ended: %v", sb.Err())
	}
	if info, _, err := agent.Client(t).Session().Info(sb.ID(), nil); err != nil || info == nil {
		t.Fatalf("the new holder's session %s is gone (%v)", sb.ID(), err)
	}
	if l := leader(t, rc.e); l == nil || l.Session != sb.ID() {
		t.Fatalf("lock holder after a deposition of a stale id: %+v, want b", l)
	}

	// The seen holder still holds: that session is destroyed.
	seen, err = rc.e.Leader(ctx)
	if err != nil || seen == nil {
		t.Fatalf("Leader = %+v, %v", seen, err)
	}
	destroyed, err = rc.e.DestroyStaleHolder(ctx, seen.Session)
	if err != nil || !destroyed {
		t.Fatalf("DestroyStaleHolder of the holder = %v, %v; want destroyed", destroyed, err)
	}
	if _, err := fence(sb, "v-after-deposition", 0); err == nil {
		t.Fatal("the deposed holder's fence succeeded")
	}
	if _, err := rc.e.DestroyStaleHolder(ctx, ""); err == nil {
		t.Fatal("DestroyStaleHolder with no session named: no error")
	}
}
