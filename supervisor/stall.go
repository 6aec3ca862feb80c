package supervisor

import "time"

// A leader whose node makes no progress for MaxStall steps down: another
// replica's node may do better. When the whole chain has stopped (the
// other validators are down or partitioned from each other), no replica
// can do better, and stepping down only moves the stall from replica to
// replica every MaxStall, each move a needless release and take. So a
// stall is the chain's, and the leader stays, when all of these hold:
//
//   - its node is not catching up (it believes it is at the top);
//   - the other replicas' reports are known (Config.BestHeight is set and
//     gave a height) and none is above its node's height: it is not
//     behind them;
//   - its node takes part: it signed at the height it is stuck on (its
//     latest height + 1: it voted there and waits for the others, which
//     with a third of the power gone is all CometBFT does, without new
//     rounds), or within MaxStall its sign state changed (key-file mode)
//     or it asked the signer (signer mode). A node that stopped taking
//     part in consensus (wedged, or dropped a step the recovery restart
//     did not bring back) is no reason to stay, even when the chain waits
//     for this very validator.
//
// Not guaranteed: a standby whose reports cannot reach Consul is not seen
// to be ahead, so a leader cut off from the chain while every standby is
// cut off from Consul stays; the lease and the fences are untouched by
// this rule either way (it only decides whether to give up a lock).
type stallWatch struct {
	stalled bool      // the chain's stall is being waited out (logged once)
	since   time.Time // when the node's sign state last changed (key-file mode)
	last    []byte    // the node's sign state as last read (key-file mode)
}

// chainStalled reports whether a stall of this leader's node, whose last
// status is st (err: unread), is the whole chain's; lastSign is when its
// node last signed or asked to. It logs the start of such a stall once
// and sets valguard_chain_stalled.
func (s *Supervisor) chainStalled(w *stallWatch, st Status, err error, lastSign time.Time) bool {
	active := !lastSign.IsZero() && s.clock.Since(lastSign) <= s.cfg.MaxStall
	if !active && err == nil && st.Height > 0 {
		active = s.signedHeight() > st.Height
	}
	ok := err == nil && !st.CatchingUp && st.Height > 0 && s.cfg.BestHeight != nil && active
	var best int64
	if ok {
		best = s.cfg.BestHeight()
		ok = best > 0 && best <= st.Height
	}
	if ok && !w.stalled {
		s.log.Warn().Int64("height", st.Height).Int64("best_height", best).Dur("max_stall", s.cfg.MaxStall).
			Msg("the chain has not moved, no other replica is ahead and this node still signs: the chain waits for other validators; not stepping down")
	}
	w.stalled = ok
	s.cfg.Metrics.chainStalled(ok)
	return ok
}

// moved ends a stall being waited out: the chain moved.
func (s *Supervisor) moved(w *stallWatch) {
	if w.stalled {
		s.log.Info().Msg("the chain moves again")
		w.stalled = false
		s.cfg.Metrics.chainStalled(false)
	}
}

// signState notes the key-file node's sign state wm, read at now, and
// returns when it last changed (zero before it changed once).
func (w *stallWatch) signState(wm []byte, now time.Time) time.Time {
	if wm != nil && string(wm) != string(w.last) {
		if w.last != nil {
			w.since = now
		}
		w.last = append(w.last[:0], wm...)
	}
	return w.since
}

// SignedHeighter is what a Node (key-file mode) or a Signer (signer mode)
// may implement to say the height of the validator's last signature.
type SignedHeighter interface {
	SignedHeight() int64
}

// signedHeight is the height of the validator's last signature, from the
// Signer in signer mode and from the Node in key-file mode; 0 when the
// one in charge does not say.
func (s *Supervisor) signedHeight() int64 {
	if h, ok := s.mode.signedHeightFrom().(SignedHeighter); ok {
		return h.SignedHeight()
	}
	return 0
}
