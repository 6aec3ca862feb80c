package consulclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/hashicorp/consul/api"

	"github.com/valguard/valguard/internal/consulkey"
)

// Access is what a command needs its Consul token to allow: the
// policies of the ACL table in docs/operations.md.
type Access int

const (
	// AccessRead: status, active-validator, state show.
	AccessRead Access = iota
	// AccessControl: handover, drain, undrain (read, and write of
	// control/).
	AccessControl
	// AccessWrite: state import (write of the watermark).
	AccessWrite
	// AccessRun: valguard run (sessions, write of valguard/<id>/, read of
	// control/).
	AccessRun
)

// accessProbe is one harmless call that needs one permission.
type accessProbe struct {
	perm  string // Consul's name of the permission
	what  string // what it allows, for the message
	grant string // the policy rule that grants it
	call  func(ctx context.Context) error
}

// CheckAccess asks Consul, before the command does anything, for
// each permission that need calls for on the validator's keys
// (valguard/<id>/), with calls that change nothing: a key read, a
// check-and-set on a key that does not exist (it never succeeds, so
// nothing is written), a session created without checks and destroyed at
// once. A refusal is an error naming the permission, the policy rule that
// grants it, and the flags that give the token; an unknown or expired
// token and an untrusted TLS certificate are named as such. A Consul that
// does not answer, or answers with another error, is not a refusal: the
// check stops there and the command goes on as without it.
//
// Not checked: listing valguard/ (only --validator-id with a label needs
// it). A token whose permissions are taken away later is not covered
// either: the lease's renewals fail and the leader steps down (DESIGN S4).
func CheckAccess(ctx context.Context, client *api.Client, o Options, id string, need Access) error {
	keys := consulkey.Validator(id)
	prefix := keys.Prefix()
	kv := client.KV()
	read := func(key string) func(ctx context.Context) error {
		return func(ctx context.Context) error {
			_, _, err := kv.Get(key, (&api.QueryOptions{}).WithContext(ctx))
			return err
		}
	}
	write := func(key string) func(ctx context.Context) error {
		return func(ctx context.Context) error {
			// ModifyIndex math.MaxUint64 on a key that does not exist: Consul
			// checks the permission, then refuses the write.
			ok, _, err := kv.CAS(&api.KVPair{Key: key, ModifyIndex: math.MaxUint64}, (&api.WriteOptions{}).WithContext(ctx))
			if err == nil && ok {
				return fmt.Errorf("check-and-set of %s at index %d succeeded", key, uint64(math.MaxUint64))
			}
			return err
		}
	}
	session := func(ctx context.Context) error {
		wo := (&api.WriteOptions{}).WithContext(ctx)
		sid, _, err := client.Session().CreateNoChecks(&api.SessionEntry{
			Name: keys.AccessCheckSession(), TTL: "10s", Behavior: api.SessionBehaviorRelease,
		}, wo)
		if err != nil {
			return err
		}
		// It holds nothing; if the destroy fails Consul expires it.
		_, _ = client.Session().Destroy(sid, wo)
		return nil
	}
	readPrefix := accessProbe{"key:read", "read " + prefix, fmt.Sprintf(`key_prefix %q { policy = "read" }`, prefix), read(keys.Leader())}
	var probes []accessProbe
	switch need {
	case AccessRead:
		probes = []accessProbe{readPrefix}
	case AccessControl:
		probes = []accessProbe{readPrefix,
			{"key:write", "write " + keys.Control(), fmt.Sprintf(`key_prefix %q { policy = "write" }`, keys.Control()), write(keys.Control() + consulkey.AccessCheck)}}
	case AccessWrite:
		probes = []accessProbe{readPrefix,
			{"key:write", "write " + prefix, fmt.Sprintf(`key_prefix %q { policy = "write" }`, prefix), write(prefix + consulkey.AccessCheck)}}
	case AccessRun:
		runRule := fmt.Sprintf(`key_prefix %q { policy = "write" }`, prefix)
		probes = []accessProbe{
			{"session:write", "create sessions (its election and report sessions)", `session_prefix "" { policy = "write" }`, session},
			{"key:write", "write " + prefix + " (its lock, watermark and report)", runRule, write(prefix + consulkey.AccessCheck)},
			{"key:read", "read " + keys.Control() + " (the operator's drain and hand-over requests)", runRule, read(keys.Control() + consulkey.AccessCheck)},
		}
	}
	for _, p := range probes {
		pctx, cancel := context.WithTimeout(ctx, o.Timeout)
		err := p.call(pctx)
		cancel()
		if err == nil {
			continue
		}
		if refusal := explainAccess(o, p, err); refusal != nil {
			return refusal
		}
		// No answer, or one that says nothing about the token (no
		// leader, a timeout): the command goes on as it would without
		// the check and meets the same trouble in its own calls (valguard
		// run waits for Consul).
		return nil
	}
	return nil
}

// explainAccess turns the failure of probe p into an error saying what is
// wrong and how to fix it, when the failure is Consul refusing the token
// or a TLS certificate that is not trusted; nil for any other failure.
func explainAccess(o Options, p accessProbe, err error) error {
	if tlsErr := explainTLS(err); tlsErr != nil {
		return tlsErr
	}
	msg := err.Error()
	var se api.StatusError
	code := 0
	if errors.As(err, &se) {
		code, msg = se.Code, se.Body
	}
	switch {
	case strings.Contains(msg, "ACL not found"):
		return fmt.Errorf("the Consul servers do not know the ACL token (%s): it is mistyped, was deleted, or has expired (a token created with an expiration time stops working then); "+
			"give --consul-token-file (or --consul-token, CONSUL_HTTP_TOKEN) a valid token; nothing was changed", tokenSource(o))
	case code == 403 || strings.Contains(msg, "Permission denied"):
		anon := ""
		if tokenSource(o) == "no token given" {
			anon = "; no token was given (--consul-token-file, --consul-token, CONSUL_HTTP_TOKEN), so Consul used its anonymous token"
		}
		return fmt.Errorf("the Consul ACL token may not %s: permission %s denied (Consul: %s)%s; grant the token's policy %s (docs/operations.md, ACL) "+
			"or give --consul-token-file a token that has it; nothing was changed",
			p.what, p.perm, strings.TrimSpace(msg), anon, p.grant)
	}
	return nil
}

// tokenSource names where the token came from, for messages.
func tokenSource(o Options) string {
	switch {
	case o.TokenFile != "":
		return "--consul-token-file " + o.TokenFile
	case o.Token != "":
		return "--consul-token"
	}
	return "no token given"
}

// explainTLS returns, for an error that is a TLS failure, one that says
// what to fix; nil for any other error.
func explainTLS(err error) error {
	var unknown x509.UnknownAuthorityError
	var host x509.HostnameError
	var invalid x509.CertificateInvalidError
	var verify *tls.CertificateVerificationError
	msg := err.Error()
	switch {
	case errors.As(err, &unknown) || strings.Contains(msg, "certificate signed by unknown authority") ||
		(errors.As(err, &verify) && !errors.As(err, &host) && !errors.As(err, &invalid)):
		return fmt.Errorf("the Consul agent's TLS certificate is not signed by a CA this command trusts: give --consul-ca-file (or CONSUL_CACERT) "+
			"the PEM certificate of the CA that signed the Consul agent's HTTPS certificate: %w", err)
	case errors.As(err, &host) || strings.Contains(msg, "certificate is valid for"):
		return fmt.Errorf("the Consul agent's TLS certificate does not name the address in --consul-url: use an address the certificate names, "+
			"or reissue the certificate for it: %w", err)
	case errors.As(err, &invalid) || strings.Contains(msg, "x509: "):
		return fmt.Errorf("the Consul agent's TLS certificate is not valid (expired, or not for a server): renew it on the Consul agent: %w", err)
	case strings.Contains(msg, "server gave HTTP response to HTTPS client"):
		return fmt.Errorf("--consul-url is https:// but Consul answers plain HTTP at that port: use http://, or the agent's HTTPS port: %w", err)
	case strings.Contains(msg, "HTTP request to an HTTPS server"):
		return fmt.Errorf("--consul-url is http:// but Consul answers HTTPS at that port: use https:// and --consul-ca-file: %w", err)
	}
	return nil
}
