package main

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// keyAside moves home's validator key out of the home, as valguard keeps
// it, and returns its new path.
func keyAside(t *testing.T, home string) string {
	t.Helper()
	outside := filepath.Join(t.TempDir(), "validator_key.json")
	if err := os.Rename(filepath.Join(home, "validator_key.json"), outside); err != nil {
		t.Fatal(err)
	}
	return outside
}

// linkKey links the key into home, as valguard does.
func linkKey(t *testing.T, home, key string) {
	t.Helper()
	if err := os.Symlink(key, filepath.Join(home, "validator_key.json")); err != nil {
		t.Fatal(err)
	}
}

// checkProduction checks that the journal holds consecutive heights after
// `after`, all by account from pid.
func checkProduction(t *testing.T, j []produced, after int64, account string, pid int) {
	t.Helper()
	for i, e := range j {
		if e.account != account || e.pid != pid {
			t.Errorf("journal line %d: %+v, want %s from pid %d", i, e, account, pid)
		}
		if i == 0 && e.height <= after {
			t.Errorf("first produced height %d, want > %d (the head before the key was loaded)", e.height, after)
		}
		if i > 0 && e.height != j[i-1].height+1 {
			t.Errorf("journal heights %d then %d: want consecutive", j[i-1].height, e.height)
		}
	}
}

func TestSIGHUPLoadsKeyAndKeepsItWhenRemoved(t *testing.T) {
	t.Parallel()
	home := initHome(t, "--account-id", "alice")
	key := keyAside(t, home)
	journal := filepath.Join(t.TempDir(), "journal")
	_, env := testChain()
	p := startRun(t, home, append(env, "STANDIN_JOURNAL="+journal)...)
	p.waitLog("no validator key: running as a non-validator", 1)
	s := p.status()
	if s.ValidatorAccountID != nil || p.metric("near_is_validator") != 0 {
		t.Fatalf("a validator before any key: %+v", s)
	}
	before := s.SyncInfo.LatestBlockHeight

	linkKey(t, home, key)
	p.signal(syscall.SIGHUP)
	p.waitLog("SIGHUP received", 1)
	p.waitLog("validator key reloaded", 1)
	s = p.status()
	if s.ValidatorAccountID == nil || *s.ValidatorAccountID != "alice" || s.ValidatorPublicKey == nil {
		t.Fatalf("after SIGHUP with the key linked: validator_account_id %v", s.ValidatorAccountID)
	}
	if v := p.metric("near_is_validator"); v != 1 {
		t.Errorf("near_is_validator %d with a key loaded", v)
	}
	waitFor(t, 5*time.Second, func() (bool, string) {
		return len(readJournal(t, journal)) >= 3, "fewer than 3 heights produced"
	})
	checkProduction(t, readJournal(t, journal), before, "alice", p.pid())

	// nearcore issue #11995: removing the key and sending SIGHUP does not
	// stop the node validating.
	if err := os.Remove(filepath.Join(home, "validator_key.json")); err != nil {
		t.Fatal(err)
	}
	n := len(readJournal(t, journal))
	p.signal(syscall.SIGHUP)
	p.waitLog("validator key file missing: keeping the loaded key", 1)
	if s = p.status(); s.ValidatorAccountID == nil || *s.ValidatorAccountID != "alice" {
		t.Fatalf("after SIGHUP with the key removed: validator_account_id %v, want alice kept", s.ValidatorAccountID)
	}
	waitFor(t, 5*time.Second, func() (bool, string) {
		return len(readJournal(t, journal)) >= n+3, "production stopped after the key was removed"
	})
	checkProduction(t, readJournal(t, journal), before, "alice", p.pid())
}

func TestSIGHUPThatLoadsNoKey(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, env, log string
	}{
		{"version 2.0.0", "STANDIN_VERSION=2.0.0", "SIGHUP reloads only the log config in this version"},
		{"STANDIN_SIGHUP=ignore", "STANDIN_SIGHUP=ignore", "SIGHUP ignored"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			home := initHome(t, "--account-id", "alice")
			key := keyAside(t, home)
			journal := filepath.Join(t.TempDir(), "journal")
			_, env := testChain()
			p := startRun(t, home, append(env, tc.env, "STANDIN_JOURNAL="+journal)...)
			linkKey(t, home, key)
			p.signal(syscall.SIGHUP)
			p.waitLog("SIGHUP received", 1)
			p.waitLog(tc.log, 1)
			h := p.status().SyncInfo.LatestBlockHeight
			waitFor(t, 5*time.Second, func() (bool, string) {
				return p.status().SyncInfo.LatestBlockHeight >= h+3, "the head does not advance"
			})
			s := p.status()
			if s.ValidatorAccountID != nil || p.metric("near_is_validator") != 0 {
				t.Errorf("key loaded: validator_account_id %v", p.get("/status"))
			}
			if j := readJournal(t, journal); len(j) > 0 {
				t.Errorf("produced without a key: %+v", j)
			}
		})
	}
}
