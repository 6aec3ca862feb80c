// Package consulkey is the layout of valguard's keys and session names in
// Consul, in one place. Every package that reads or writes a key of
// valguard's builds its name here:
//
//	valguard/<validator>/leader                   the lock: its holder is the leader (election)
//	valguard/<validator>/watermark                the highest height/round/step signed (election, signer)
//	valguard/<validator>/replicas/<replica>       a replica's report (roster)
//	valguard/<validator>/control/drain/<replica>  the operator's drain mark (roster, operator)
//	valguard/<validator>/control/handover         the operator's hand-over request (roster, operator)
//
// and the sessions:
//
//	valguard/<validator>/<replica>                a replica's election session
//	valguard-report/<validator>/<replica>         a replica's report session
//	valguard-access-check/<validator>             the start-up access check's throwaway session
//
// A Consul ACL policy for one validator is key_prefix "valguard/<validator>/"
// (Prefix): every key above is under it.
package consulkey

import "strings"

// root is the first part of every key.
const root = "valguard/"

// AccessCheck is the last part of the keys the start-up access check
// writes with a check-and-set that cannot succeed, and reads: no valguard
// ever writes a key of that name, so the check never changes anything.
const AccessCheck = "access-check"

// Validator is the key layout of one validator, named by its lock id.
type Validator string

// Prefix is the prefix of every key of the validator: valguard/<id>/.
func (v Validator) Prefix() string { return root + string(v) + "/" }

// Leader is the lock's key.
func (v Validator) Leader() string { return v.Prefix() + "leader" }

// Watermark is the key of the published sign watermark.
func (v Validator) Watermark() string { return v.Prefix() + "watermark" }

// Reports is the prefix of the replicas' reports.
func (v Validator) Reports() string { return v.Prefix() + "replicas/" }

// Report is the key of replica's report.
func (v Validator) Report(replica string) string { return v.Reports() + replica }

// Control is the prefix of the operator's requests (drain marks, the
// hand-over request), which every replica must be able to read.
func (v Validator) Control() string { return v.Prefix() + "control/" }

// Drains is the prefix of the drain marks.
func (v Validator) Drains() string { return v.Control() + "drain/" }

// Drain is the key that marks replica drained.
func (v Validator) Drain(replica string) string { return v.Drains() + replica }

// Handover is the key of the hand-over request.
func (v Validator) Handover() string { return v.Control() + "handover" }

// ElectionSession is the name of replica's election session.
func (v Validator) ElectionSession(replica string) string { return v.Prefix() + replica }

// ReportSession is the name of replica's report session.
func (v Validator) ReportSession(replica string) string {
	return "valguard-report/" + string(v) + "/" + replica
}

// AccessCheckSession is the name of the access check's session.
func (v Validator) AccessCheckSession() string { return "valguard-access-check/" + string(v) }

// Root is the prefix under which every validator's keys are, for a list
// of all of them.
func Root() string { return root }

// LeaderOf reports the validator whose lock key is key: ok only for a key
// of the form valguard/<validator>/leader.
func LeaderOf(key string) (v Validator, ok bool) {
	parts := strings.Split(key, "/")
	if len(parts) != 3 || parts[0]+"/" != root || parts[1] == "" || parts[2] != "leader" {
		return "", false
	}
	return Validator(parts[1]), true
}
