package supervisor

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fencedNode is a fakeNode for a chain without sign state (NEAR): its
// watermark is a height, reached when the node's head is at or above it.
type fencedNode struct {
	*fakeNode
	head atomic.Int64
}

func (f *fencedNode) AtWatermark(_ context.Context, wm []byte) (bool, error) {
	if len(wm) == 0 {
		return true, nil
	}
	h, err := strconv.ParseInt(string(wm), 10, 64)
	if err != nil {
		return false, err
	}
	at := f.head.Load() >= h
	f.j.add("fence:at=%v", at)
	return at, nil
}

func newFencedRig(t *testing.T, head int64) (*rig, *fencedNode) {
	r := newRig(t, nil)
	f := &fencedNode{fakeNode: r.node}
	f.head.Store(head)
	r.sup.cfg.Node = f
	return r, f
}

// A new leader whose node is behind the height the previous leader
// published waits, holding the lock, until its head gets there.
func TestPromotionWaitsForThePublishedHeight(t *testing.T) {
	r, f := newFencedRig(t, 10)
	r.el.watermark = []byte("50")
	r.run()
	r.waitState(Voting)
	r.el.grant <- struct{}{}
	eventually(t, 5*time.Second, "the head compared", func() bool { return r.j.index("fence:at=false") >= 0 })
	time.Sleep(100 * time.Millisecond) // MaxStall is 300 ms: still within it
	if n := r.node.starts(RoleValidator); n != 0 {
		t.Fatalf("validator started with the node's head below the published height:\n%s", strings.Join(r.j.list(), "\n"))
	}
	f.head.Store(50)
	r.waitState(Validating)
	r.before("fence:at=false", "fence:at=true")
	r.before("fence:at=true", "prepare:validator wm=50")
}

// A node that does not reach the published height within MaxStall gives
// the lock back (it never held the key) and the replica starts over.
func TestPromotionGivesUpBelowThePublishedHeight(t *testing.T) {
	r, _ := newFencedRig(t, 10)
	r.el.watermark = []byte("50")
	r.run()
	r.waitState(Voting)
	first := r.el.current()
	r.el.grant <- struct{}{}
	eventually(t, 5*time.Second, "lock given back", first.isClosed)
	if n := r.node.starts(RoleValidator); n != 0 {
		t.Fatalf("validator started below the published height (%d)", n)
	}
	if i := r.j.index("prepare:validator"); i >= 0 {
		t.Fatalf("validator role prepared below the published height:\n%s", strings.Join(r.j.list(), "\n"))
	}
	r.before("fence:at=false", "release final= reaped=true")
}

// An election error wrapping ErrFatal ends Run instead of being retried.
func TestFatalElectionErrorEndsRun(t *testing.T) {
	r := newRig(t, nil)
	r.el.acquireErr = fmt.Errorf("%w: lock names another public key", ErrFatal)
	r.run()
	select {
	case err := <-r.result:
		if !errors.Is(err, ErrFatal) {
			t.Fatalf("Run = %v, want ErrFatal", err)
		}
		r.result <- err // for the cleanup
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not end")
	}
	if n := r.node.starts(RoleValidator); n != 0 {
		t.Fatalf("validator started (%d)", n)
	}
	if !r.node.allReaped() {
		t.Fatal("node left running")
	}
}
