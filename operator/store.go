package operator

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/hashicorp/consul/api"

	"github.com/valguard/valguard/election"
	"github.com/valguard/valguard/roster"
)

// Store is what the protocol reads and writes in Consul for one
// validator. ConsulStore is the real one.
type Store interface {
	// LockKey names the validator's lock key, for messages.
	LockKey() string
	// Leader is the lock holder; nil when none.
	Leader(ctx context.Context) (*election.LeaderInfo, error)
	// Reports are every replica's last report, sorted by replica id.
	Reports(ctx context.Context) ([]roster.Entry, error)
	// Drains are the drain marks, by replica.
	Drains(ctx context.Context) (map[string]roster.Drain, error)
	// Handover is the hand-over request and its index; nil, 0 when none.
	Handover(ctx context.Context) (*roster.Handover, uint64, error)
	// PutHandover writes h if the stored request is at index (0: none)
	// and returns the new index; roster.ErrRequestChanged otherwise.
	PutHandover(ctx context.Context, h roster.Handover, index uint64) (uint64, error)
	// EndHandover removes the request if it is still the one with id.
	EndHandover(ctx context.Context, id string) error
	// SetDrain writes replica's drain mark.
	SetDrain(ctx context.Context, replica string, d roster.Drain) error
	// SetDrainUnlessLeading writes replica's drain mark unless replica
	// holds the lock at the write: then an error wrapping
	// roster.ErrLeading, and nothing written.
	SetDrainUnlessLeading(ctx context.Context, replica string, d roster.Drain) error
	// Undrain removes replica's drain mark; roster.ErrNotDrained when
	// there is none.
	Undrain(ctx context.Context, replica string) error
}

// ConsulStore is the Store of a validator's election (read only) and
// roster in Consul.
type ConsulStore struct {
	*roster.Roster
	El *election.Election
	// URL is Consul's address, for the hint of an error.
	URL string
}

// LockKey is the election's lock key.
func (s *ConsulStore) LockKey() string { return s.El.LockKey() }

// Leader reads the lock holder.
func (s *ConsulStore) Leader(ctx context.Context) (*election.LeaderInfo, error) {
	return s.El.Leader(ctx)
}

// SetDrainUnlessLeading writes the mark in one transaction with a check
// of the lock key (roster.Roster.SetDrainUnlessLeading).
func (s *ConsulStore) SetDrainUnlessLeading(ctx context.Context, replica string, d roster.Drain) error {
	return s.Roster.SetDrainUnlessLeading(ctx, replica, d, s.El.LockKey(), lockHolder)
}

// lockHolder names the replica whose session holds the lock key read as
// pair; "" when no session does. A held key whose value cannot be read
// names no known replica: an error, so that nothing is decided on it.
func lockHolder(pair *api.KVPair) (string, error) {
	info, err := election.HolderOf(pair)
	if err != nil {
		return "", fmt.Errorf("%w: the leader is unknown, nothing changed (valguard status)", err)
	}
	if info == nil {
		return "", nil
	}
	return info.ReplicaID, nil
}

// Hint adds the likely fix to a Consul error.
func (s *ConsulStore) Hint(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	var nerr net.Error
	var uerr *url.Error
	switch {
	case strings.Contains(msg, "403") || strings.Contains(msg, "ACL not found") || strings.Contains(msg, "Permission denied"):
		return fmt.Errorf("%w\nConsul refused the token: give --consul-token-file (or CONSUL_HTTP_TOKEN) a token that may read (for drain, undrain and handover also write) keys under valguard/", err)
	case errors.As(err, &nerr), errors.As(err, &uerr), strings.Contains(msg, "connection refused"):
		return fmt.Errorf("%w\nConsul does not answer at %s: check --consul-url (or CONSUL_HTTP_ADDR) and that the Consul agent runs", err, s.URL)
	}
	return err
}
