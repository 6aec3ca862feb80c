package main

import (
	"context"
	"fmt"
	"syscall"
	"time"

	"github.com/valguard/valguard/internal/localnet"
)

// timeline is one failover, from the signal to the first new signature.
type timeline struct {
	sig                        syscall.Signal
	from, to                   string
	killAt                     time.Time
	killHeight                 int64
	lockAt, nodeAt, validateAt time.Time
	// takenAt is when the standby took a lock key that no clean release
	// left (zero after a clean hand-over): it then waits before signing.
	takenAt time.Time
	// deposedAt is when the standby destroyed the old leader's session
	// (signer mode with --signer-depose-after; zero otherwise).
	deposedAt time.Time
	first     signed
	missed    int
	nodeGone  bool
	// Leaderless runs (--signers any): by is the replica whose node's vote
	// made the first signature after the kill, windowTo the last height
	// missed heights were counted to, backAt when the victim was
	// Validating again.
	by       string
	windowTo int64
	backAt   time.Time
}

func (t timeline) toSign() time.Duration { return t.first.at.Sub(t.killAt) }

// failover signals the leader's valguard and measures the standby's
// takeover.
func (e *demoEnv) failover(ctx context.Context, leader, standby *replica, sig syscall.Signal) (timeline, error) {
	tl := timeline{sig: sig, from: leader.id, to: standby.id}
	nodePID := localnet.LastNodePID(leader.logPath)
	h, err := localnet.Height(ctx, e.rpc)
	if err != nil {
		return tl, err
	}
	tl.killHeight, tl.killAt = h, time.Now()
	if err := leader.p.Cmd.Process.Signal(sig); err != nil { // valguard only, not its group
		return tl, err
	}
	if err := standby.waitState(ctx, "Validating", 2*time.Minute); err != nil {
		return tl, err
	}
	tl.lockAt, _ = standby.event("lock acquired", "", tl.killAt)
	tl.takenAt, _ = standby.event(uncleanTakeover, "", tl.killAt)
	tl.nodeAt, _ = standby.event("node started", "validator", tl.killAt)
	tl.deposedAt, _ = standby.event(deposedHolder, "", tl.killAt)
	tl.validateAt = time.Now()
	select {
	case <-leader.p.Done():
	case <-time.After(30 * time.Second):
		return tl, fmt.Errorf("valguard %s did not exit after %s", leader.id, sig)
	}
	tl.nodeGone = nodePID > 0 && !localnet.Alive(nodePID)
	if tl.first, err = e.firstSigned(ctx, tl.killHeight, 2*time.Minute); err != nil {
		return tl, err
	}
	_, missed, err := localnet.Signers(ctx, e.rpc, tl.killHeight+1, tl.first.height, e.net.HAAddress)
	if err != nil {
		return tl, err
	}
	tl.missed = len(missed)
	return tl, nil
}

func (t timeline) print(e *demoEnv) {
	at := func(x time.Time) string {
		if x.IsZero() {
			return "   ?   "
		}
		return fmt.Sprintf("+%6.2fs", x.Sub(t.killAt).Seconds())
	}
	fmt.Println()
	fmt.Printf("  failover timeline (%s to valguard %s at height %d)\n", signalName(t.sig), t.from, t.killHeight)
	fmt.Printf("  %s  %s sent; its node killed with it: %v\n", at(t.killAt), signalName(t.sig), t.nodeGone)
	if !t.takenAt.IsZero() {
		fmt.Printf("  %s  replica %s took the lock key (no clean release: it waits before signing, in case the old leader still signs)\n", at(t.takenAt), t.to)
		fmt.Printf("  %s  replica %s holds the lock, the wait over\n", at(t.lockAt), t.to)
	} else {
		fmt.Printf("  %s  replica %s acquired the lock\n", at(t.lockAt), t.to)
	}
	fmt.Printf("  %s  replica %s restarted its node as the validator\n", at(t.nodeAt), t.to)
	fmt.Printf("  %s  first height signed: %d\n", at(t.first.at), t.first.height)
	fmt.Printf("  missed heights: %d (heights %d..%d)\n\n", t.missed, t.killHeight+1, t.first.height)
}

// uncleanTakeover is the message valguard logs when it took a lock key
// without a clean-release marker.
const uncleanTakeover = "lock taken without a clean release by the previous leader: waiting before signing, so that it has stopped"

// deposedHolder is the message a signer-mode standby logs when it destroyed
// the leader's session.
const deposedHolder = "deposed the holder: own node parked above a watermark that did not move"

func signalName(s syscall.Signal) string {
	if s == syscall.SIGKILL {
		return "SIGKILL"
	}
	return "SIGTERM"
}
