package chaos

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// recover restarts every replica that exited and is not held down, and
// waits until exactly one replica is Validating and every other one is
// Voting. It returns when that was first seen.
func (d *Drill) recover(ctx context.Context, limit time.Duration) (time.Time, error) {
	deadline := time.Now().Add(limit)
	var states []string
	var since time.Time // when the shape was first seen, zero if not now
	if err := sleep(ctx, time.Second); err != nil {
		return time.Time{}, err
	}
	for time.Now().Before(deadline) {
		for _, r := range d.rig.Replicas {
			if restarted, err := r.Ensure(); err != nil {
				return time.Time{}, err
			} else if restarted {
				d.logf("replica %s restarted", r.ID)
			}
		}
		states = states[:0]
		validating, voting := 0, 0
		for _, r := range d.rig.Replicas {
			s := r.State()
			states = append(states, r.ID+"="+s)
			switch s {
			case "Validating":
				validating++
			case "Voting":
				voting++
			}
		}
		inShape := validating == 1 && voting == len(d.rig.Replicas)-1
		if d.cfg.Mode == ModeAny {
			inShape = validating == len(d.rig.Replicas) // every replica signs
		}
		switch {
		case !inShape:
			since = time.Time{}
		case since.IsZero():
			since = time.Now()
		case time.Since(since) >= time.Second:
			// Held for a second: not a leader about to notice its loss.
			return since, nil
		}
		if err := sleep(ctx, 250*time.Millisecond); err != nil {
			return time.Time{}, err
		}
	}
	shape := fmt.Sprintf("one leader and %d standbys", len(d.rig.Replicas)-1)
	if d.cfg.Mode == ModeAny {
		shape = "every replica signing"
	}
	return time.Time{}, fmt.Errorf("replicas not back to %s within %s: %s", shape, limit, strings.Join(states, " "))
}

// leader is the replica in Validating (waiting up to 10 s for one);
// under --signers any, where every replica signs, one of those in
// Validating at random.
func (d *Drill) leader(ctx context.Context) *Replica {
	for range 40 {
		if d.cfg.Mode == ModeAny {
			for _, i := range d.rnd.Perm(len(d.rig.Replicas)) {
				if r := d.rig.Replicas[i]; r.State() == "Validating" {
					return r
				}
			}
		}
		for _, r := range d.rig.Replicas {
			if r.State() == "Validating" {
				return r
			}
		}
		if sleep(ctx, 250*time.Millisecond) != nil {
			return nil
		}
	}
	return nil
}

// standby is a replica other than leader, chosen at random.
func (d *Drill) standby(leader *Replica) *Replica {
	var out []*Replica
	for _, r := range d.rig.Replicas {
		if r != leader {
			out = append(out, r)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out[d.rnd.IntN(len(out))]
}

func (d *Drill) waitState(ctx context.Context, r *Replica, want string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if r.State() == want {
			return nil
		}
		if !r.Running() {
			return fmt.Errorf("replica %s exited; log %s:\n%s", r.ID, r.Log, tail(r.Log, 20))
		}
		if err := sleep(ctx, 250*time.Millisecond); err != nil {
			return err
		}
	}
	return fmt.Errorf("replica %s not %s within %s (state %q); log %s:\n%s", r.ID, want, limit, r.State(), r.Log, tail(r.Log, 20))
}
