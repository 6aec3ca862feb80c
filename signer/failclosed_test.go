package signer

import (
	"context"
	"strings"
	"testing"
	"time"

	privvalproto "github.com/cometbft/cometbft/proto/tendermint/privval"
)

// LastRequest feeds a duration that decides a node restart
// (time.Since(LastRequest()) in the supervisor): it must be on the
// monotonic clock, so that a step of the wall clock (NTP, an operator)
// neither fakes nor hides a silent node (S4).
func TestLastRequestIsMonotonic(t *testing.T) {
	s, err := New(Config{Key: testKey, ChainID: testChain, Store: consulStore{}, FloorFile: t.TempDir() + "/floor.json"})
	if err != nil {
		t.Fatal(err)
	}
	if !s.LastRequest().IsZero() {
		t.Fatalf("last request %v before any request", s.LastRequest())
	}
	before := time.Now()
	// A vote request without a vote: refused at once, but a request.
	m := s.Handle(context.Background(), privvalproto.Message{Sum: &privvalproto.Message_SignVoteRequest{
		SignVoteRequest: &privvalproto.SignVoteRequest{ChainId: testChain}}})
	if r := m.GetSignedVoteResponse(); r == nil || r.Error == nil {
		t.Fatalf("got %v, want a refusal", m)
	}
	last := s.LastRequest()
	// time.Time.String ends in "m=±<seconds>" exactly when the time
	// carries a monotonic clock reading.
	if !strings.Contains(last.String(), " m=") {
		t.Fatalf("last request %v carries no monotonic clock reading: durations from it follow the wall clock", last)
	}
	if since := time.Since(last); since < 0 || last.Before(before) || since > time.Minute {
		t.Fatalf("last request %v, %v ago, request sent at %v", last, since, before)
	}
}
