package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"time"
)

// produce runs the block production model until ctx is done: once synced,
// every height the head reaches while a validator key is loaded (and at or
// after the key's first height) is recorded in the journal. When ctx is
// done, the heights reached up to that instant are recorded before it
// returns. An error writing the journal ends production: a stand-in that
// produces without recording would hide double signs from the tests.
func (n *node) produce(ctx context.Context) error {
	wait := time.NewTimer(time.Until(n.syncEnd))
	select {
	case <-ctx.Done():
		wait.Stop()
		return nil
	case <-wait.C:
	}
	last := n.chain.head(n.syncEnd) // reached while syncing: not produced
	n.log.Info().Int64("height", last).Msg("synced")
	for {
		wait.Reset(time.Until(n.chain.blockTime(last + 1)))
		select {
		case <-ctx.Done():
			wait.Stop()
			return n.produceUpTo(&last, n.chain.head(time.Now()))
		case <-wait.C:
		}
		if err := n.produceUpTo(&last, n.chain.head(time.Now())); err != nil {
			return err
		}
	}
}

// produceUpTo produces the heights after *last up to head.
func (n *node) produceUpTo(last *int64, head int64) error {
	for h := *last + 1; h <= head; h++ {
		*last = h
		v := n.validator()
		if v == nil || h < v.from {
			continue
		}
		if err := n.record(h, v.AccountID); err != nil {
			return err
		}
	}
	return nil
}

// record appends "HEIGHT ACCOUNT PID\n" to the journal in one write and
// fsyncs it.
func (n *node) record(h int64, account string) error {
	if n.journal == nil {
		return nil
	}
	line := strconv.FormatInt(h, 10) + " " + account + " " + strconv.Itoa(os.Getpid()) + "\n"
	if _, err := n.journal.WriteString(line); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	if err := n.journal.Sync(); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	return nil
}
