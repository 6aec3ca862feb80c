package signer

import (
	"context"
	"time"
)

// decide runs Decide under the signing mutex until the request is signed,
// re-served or refused, or ParkHold after arrival has passed (parked). A
// parked request waits without the mutex and decides again whenever the
// watermark or the role changes.
func (s *Signer) decide(ctx context.Context, arrived time.Time, req Request) (o outcome) {
	hold := arrived.Add(s.cfg.ParkHold)
	var parkedAt time.Time
	defer func() {
		if parkedAt.IsZero() {
			return
		}
		o.parked = s.cfg.Now().Sub(parkedAt)
		s.cfg.Metrics.parkedFor(o.parked)
		s.unpark(o.result != resultParked)
	}()
	for {
		t := s.decideOnce(req, arrived, &hold, &parkedAt)
		switch {
		case t.done:
			if t.o.result == resultSigned {
				s.floorAfterFence(&t.o)
			}
			return t.o
		case t.again:
			continue
		}
		wait := hold.Sub(s.cfg.Now())
		if wait <= 0 {
			return outcome{result: resultParked, reason: t.reason}
		}
		timer := time.NewTimer(wait)
		select {
		case <-t.changed:
			timer.Stop()
		case <-timer.C:
			return outcome{result: resultParked, reason: t.reason}
		case <-ctx.Done():
			timer.Stop()
			return outcome{result: resultParked, reason: "request abandoned: " + ctx.Err().Error()}
		}
	}
}

// turn is one decision under the signing mutex: the request's outcome
// (done), a decision to take again at once (again), or a park until
// changed is closed or the hold ends (reason says why).
type turn struct {
	o       outcome
	done    bool
	again   bool
	changed <-chan struct{}
	reason  string
}

// decideOnce takes one decision for req under the signing mutex, which it
// releases however it ends (a panic included: failClosedOnPanic). A
// request that parks for the first time sets *parkedAt and counts in the
// deposition bookkeeping; one too late to fence sets *hold to its arrival
// (reply at once; the node asks again).
func (s *Signer) decideOnce(req Request, arrived time.Time, hold, parkedAt *time.Time) turn {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.failClosedOnPanic()
	d := Decision{Result: Refuse, Reason: "request for chain " + req.ChainID + ", valguard signs for " + s.cfg.ChainID, Refusal: RefusalChain}
	switch {
	case req.ChainID != s.cfg.ChainID:
	case s.cfg.Leaderless && !s.leading && (s.cfg.HeldOut == nil || s.cfg.HeldOut()):
		// Drained, not synced, starting or stopping: the validator's
		// other replicas sign. Re-serving would be safe, but an operator
		// who drains a replica expects its signer to give nothing out.
		d = Decision{Result: Refuse, Refusal: RefusalNotSigning,
			Reason: "this replica does not sign now (drained, not synced, or stopping); the validator's other replicas sign"}
	default:
		d = Decide(s.leading, s.wm, req)
	}
	if d.Result == Sign {
		// The fence ends early enough to leave the floor file write its
		// bound before the reply is due.
		due := arrived.Add(replyBudget - s.cfg.FloorTimeout)
		if s.cfg.Now().Add(s.cfg.FenceTimeout).After(due) {
			d = Decision{Result: Park, Reason: "too late to fence before the node's read timeout"}
			*hold = arrived
		} else if o, ok := s.signLocked(req, d, due); ok {
			return turn{o: o, done: true}
		} else if s.leading {
			return turn{again: true} // an own late fence was adopted: decide again
		} else {
			d = Decide(s.leading, s.wm, req) // demoted: parks
		}
	}
	switch d.Result {
	case Reserve:
		return turn{o: outcome{result: resultReserved, sig: d.Signature, ts: d.Timestamp, ext: d.Extension}, done: true}
	case Refuse:
		return turn{o: outcome{result: resultRefused, reason: d.Reason, refusal: d.Refusal}, done: true}
	}
	if !s.leading && s.lockFree() && !s.inElection() {
		return turn{o: outcome{result: resultRefused, refusal: RefusalNoHolder, reason: "above the watermark " + s.wm.String() +
			" and no replica holds the lock: refused at once, not to hold the node back"}, done: true}
	}
	if parkedAt.IsZero() {
		*parkedAt = s.cfg.Now()
		s.parking++
		if s.parkSince.IsZero() {
			s.parkSince = *parkedAt
		}
	}
	return turn{changed: s.changed, reason: d.Reason}
}

// unpark ends a parked request's count in the deposition bookkeeping;
// answered: it was answered (not parked again).
func (s *Signer) unpark(answered bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.parking--
	s.lastParkEnd = s.cfg.Now()
	if answered {
		s.parkSince = time.Time{}
	}
}
