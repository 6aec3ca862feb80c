package election_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/valguard/valguard/election"
	"github.com/valguard/valguard/internal/consultest"
)

// compareHeights orders watermarks written as decimal heights.
func compareHeights(a, b []byte) (int, error) {
	x, err := strconv.ParseInt(string(a), 10, 64)
	if err != nil {
		return 0, err
	}
	y, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return 0, err
	}
	return cmp.Compare(x, y), nil
}

func withHeights(c *election.Config) { c.CompareWatermarks = compareHeights }

// watermarkPair reads the watermark key's raw pair.
func watermarkPair(t *testing.T, client *api.Client, e *election.Election) *api.KVPair {
	t.Helper()
	pair, _, err := client.KV().Get(e.WatermarkKey(), &api.QueryOptions{RequireConsistent: true})
	if err != nil {
		t.Fatal(err)
	}
	return pair
}

// Item 5: Publish and Close never lower the watermark.
func TestWatermarkNeverLowered(t *testing.T) {
	t.Parallel()
	agent := consultest.Start(t)
	admin := agent.Client(t)
	v := validatorID(t)
	ra, rb := newReplica(t, agent.Client(t), v, "a", withHeights), newReplica(t, agent.Client(t), v, "b", withHeights)
	sa := ra.session(t)
	mustAcquire(t, sa, firstAcquire)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := sa.Publish(ctx, []byte("10")); err != nil {
		t.Fatalf("Publish 10: %v", err)
	}
	if err := sa.Publish(ctx, []byte("5")); !errors.Is(err, election.ErrWatermarkLower) {
		t.Errorf("Publish 5 after 10 = %v, want ErrWatermarkLower", err)
	}
	p := watermarkPair(t, admin, ra.e)
	if string(p.Value) != "10" {
		t.Fatalf("watermark %q after a lower publish, want 10", p.Value)
	}
	if err := sa.Publish(ctx, []byte("10")); err != nil {
		t.Errorf("Publish of the equal 10 = %v, want nil", err)
	}
	if q := watermarkPair(t, admin, ra.e); q.ModifyIndex != p.ModifyIndex {
		t.Errorf("an equal publish wrote the key (index %d → %d)", p.ModifyIndex, q.ModifyIndex)
	}
	if err := sa.Publish(ctx, []byte("12")); err != nil {
		t.Fatalf("Publish 12: %v", err)
	}
	if sa.Err() != nil || !sa.Leader() {
		t.Fatalf("refused publish ended the lease: %v", sa.Err())
	}

	// The final write of a release does not lower it either, and the lock
	// is released all the same.
	sb := rb.session(t)
	chb := acquireAsync(context.Background(), sb)
	err := sa.Close(ctx, []byte("8"))
	if !errors.Is(err, election.ErrWatermarkLower) {
		t.Errorf("Close with a lower final = %v, want ErrWatermarkLower", err)
	}
	if w := watermark(t, ra.e); string(w) != "12" {
		t.Errorf("watermark %q after a lower final, want 12", w)
	}
	if r := waitResult(t, chb, 3*time.Second, "standby after a release with a lower final"); r.err != nil {
		t.Fatalf("standby Acquire: %v", r.err)
	}
	if err := sb.Close(ctx, []byte("13")); err != nil {
		t.Errorf("Close with a higher final: %v", err)
	}
	if w := watermark(t, ra.e); string(w) != "13" {
		t.Errorf("watermark %q after a higher final, want 13", w)
	}
}

// A write that lands between Publish's read and its check-and-set makes
// the CAS fail; Publish re-reads, and a value now lower is not written.
// Racing publishers leave the highest value.
func TestWatermarkCheckAndSet(t *testing.T) {
	t.Parallel()
	agent := consultest.Start(t)
	admin := agent.Client(t)
	v := validatorID(t)
	var once sync.Once
	var r *replica
	r = newReplica(t, agent.Client(t), v, "a", func(c *election.Config) {
		c.CompareWatermarks = func(a, b []byte) (int, error) {
			// The first comparison races with another writer.
			once.Do(func() {
				if _, err := admin.KV().Put(&api.KVPair{Key: r.e.WatermarkKey(), Value: []byte("50")}, nil); err != nil {
					t.Error(err)
				}
			})
			return compareHeights(a, b)
		}
	})
	s := r.session(t)
	mustAcquire(t, s, firstAcquire)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.Publish(ctx, []byte("1")); err != nil {
		t.Fatalf("Publish 1: %v", err)
	}
	if err := s.Publish(ctx, []byte("20")); !errors.Is(err, election.ErrWatermarkLower) {
		t.Errorf("Publish 20 racing with a write of 50 = %v, want ErrWatermarkLower after the re-read", err)
	}
	if w := watermark(t, r.e); string(w) != "50" {
		t.Errorf("watermark %q, want the racing writer's 50", w)
	}
	if s.Err() != nil {
		t.Fatalf("a lost check-and-set ended the session: %v", s.Err())
	}

	// Two writers of the one session race; a publish may give up after
	// repeated lost check-and-sets, but the stored value must end as the
	// highest one any publish reported written (a plain set could leave a
	// lower one last).
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		best int
	)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for h := 100 + i; h < 200; h += 2 {
				if err := s.Publish(ctx, []byte(fmt.Sprint(h))); err == nil {
					mu.Lock()
					best = max(best, h)
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if w := watermark(t, r.e); string(w) != fmt.Sprint(best) {
		t.Errorf("watermark %q after racing publishes, want the highest written, %d", w, best)
	}
	if s.Err() != nil || !s.Leader() {
		t.Errorf("concurrent publishes ended the session: %v", s.Err())
	}
}
