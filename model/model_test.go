//go:build e2e

// Package model checks the Promela models of valguard's hand-over protocol
// (keyfile.pml, signer.pml) and of the leaderless signer policy
// (leaderless.pml) with spin: the real models must hold every property,
// each mutant (a safety ordering removed) must give a counterexample, and
// the documented exceptions must show theirs. See README.md in this
// directory.
package model

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// check is one spin run: a model, its -D flags, how pan is compiled and
// run, and whether spin must find an error.
type check struct {
	name  string
	model string   // keyfile.pml, signer.pml or leaderless.pml
	defs  []string // -D flags for spin (the model's switches)
	cc    []string // -D flags for gcc (pan's search mode)
	pan   []string // pan's run-time flags
	fail  bool     // true: a counterexample is required (mutant, finding, exception)
	why   string   // what the result shows
}

var checks = []check{
	// signer mode: exhaustive
	{name: "signer/safety", model: "signer.pml", cc: []string{"-DSAFETY"}, pan: []string{"-m100000"},
		why: "one signature per level, the watermark never decreases"},
	{name: "signer/mutant-reply-before-fence", model: "signer.pml", defs: []string{"-DMUT_REPLY_FIRST"},
		cc: []string{"-DSAFETY", "-DBFS"}, fail: true,
		why: "a deposed leader's signature leaves before its fence fails; the new leader signs other data at that level"},
	{name: "signer/liveness-same-data", model: "signer.pml", defs: []string{"-DLIVENESS", "-DSAME_DATA"},
		pan: []string{"-a", "-f", "-m100000"}, why: "after the leader crashes, the standby signs"},
	{name: "signer/liveness-no-crash-in-window", model: "signer.pml", defs: []string{"-DLIVENESS", "-DNO_CRASH_IN_WINDOW"},
		pan: []string{"-a", "-f", "-m100000"}, why: "the standby signs unless the crash falls between fence and reply"},
	{name: "signer/liveness-exception", model: "signer.pml", defs: []string{"-DLIVENESS"},
		pan: []string{"-a", "-f", "-m100000"}, fail: true,
		why: "documented exception: fenced, crashed before the reply, the standby's node wants other data: refused, stuck"},

	// signer mode: a missing or lowered watermark key (RESTORE). The passes
	// are exhaustive; the mutants and exceptions stop at the first error
	// (DFS; README.md gives the shortest counterexample, found with BFS) and
	// run without crashes or the faults signer/safety covers (LEAN), with
	// the coverage assertions off (ONLY_S1): each counterexample is two
	// signatures for one level.
	{name: "signer/restore-delete", model: "signer.pml", defs: []string{"-DRESTORE", "-DMAXDEL=1", "-DFLOOR_ASIDE"},
		cc: []string{"-DSAFETY"}, pan: []string{"-m100000"},
		why: "the key deleted at any moment, a floor file moved aside: one signature per level, the watermark covers every released signature"},
	{name: "signer/restore-rollback", model: "signer.pml", defs: []string{"-DRESTORE", "-DMAXROLL=1", "-DROLL_SEEN"},
		cc: []string{"-DSAFETY"}, pan: []string{"-m100000"},
		why: "the key rolled back to an old snapshot once every floor file holds what it replaced: the same properties"},
	{name: "signer/mutant-missing-as-empty", model: "signer.pml",
		defs: append([]string{"-DMAXDEL=1", "-DMUT_MISSING_AS_EMPTY"}, restoreLean...),
		cc:   []string{"-DSAFETY", "-DCOLLAPSE"}, pan: []string{"-m100000"}, fail: true,
		why: "a missing key led from as the zero watermark: the new leader signs other data at the level the old one fenced"},
	{name: "signer/mutant-standby-adopts-lower", model: "signer.pml",
		defs: append([]string{"-DMAXROLL=1", "-DROLL_SEEN", "-DMUT_STANDBY_ADOPTS_LOWER"}, restoreLean...),
		cc:   []string{"-DSAFETY", "-DCOLLAPSE"}, pan: []string{"-m100000"}, fail: true,
		why: "a standby adopts a rolled-back key and leads from it checking its memory only: it signs a level already signed"},
	{name: "signer/restore-exception-rollback-unseen", model: "signer.pml",
		defs: append([]string{"-DMAXROLL=1"}, restoreLean...),
		cc:   []string{"-DSAFETY", "-DCOLLAPSE"}, pan: []string{"-m100000"}, fail: true,
		why: "finding F2: a rollback the new leader never saw the replaced key of is not detected; it signs the in-flight level again"},
	{name: "signer/restore-exception-node-behind", model: "signer.pml",
		defs: append([]string{"-DMAXDEL=1", "-DNODE_LAG"}, restoreLean...),
		cc:   []string{"-DSAFETY", "-DCOLLAPSE"}, pan: []string{"-m100000"}, fail: true,
		why: "finding F3: the key deleted; the new leader's node one level behind the chain leaves the in-flight level open"},
	{name: "signer/restore-exception-genesis", model: "signer.pml",
		defs: append([]string{"-DMAXDEL=1", "-DGENESIS"}, restoreLean...),
		cc:   []string{"-DSAFETY", "-DCOLLAPSE"}, pan: []string{"-m100000"}, fail: true,
		why: "finding F4: the key deleted at the first height; a standby that saw nothing leads from zero as a new validator"},

	// the leaderless signer policy (--signers any): one sign record per
	// validator, written by check-and-set. The passes are exhaustive; the
	// mutants stop at the first error (DFS; README.md gives the shortest
	// counterexample, found with BFS) with the record assertions off
	// (ONLY_S11): each counterexample is two signatures for one level.
	{name: "leaderless/safety", model: "leaderless.pml",
		cc: []string{"-DSAFETY"}, pan: []string{"-m100000"},
		why: "one signature per level, the record never goes down (lost races, unknown and late CASes, a crash)"},
	{name: "leaderless/safety-delete", model: "leaderless.pml", defs: []string{"-DMAXDEL=1"},
		cc: []string{"-DSAFETY"}, pan: []string{"-m100000"},
		why: "the same with the record deleted once at any moment: restored from the floor file, the memory and the chain raise"},
	{name: "leaderless/safety-three", model: "leaderless.pml", defs: []string{"-DNR=3", "-DMAXCRASH=0", "-DMAXUNK=1"},
		cc: []string{"-DSAFETY"}, pan: []string{"-m100000"},
		why: "three replicas racing for each level, one unknown or late CAS: the same properties"},
	{name: "leaderless/liveness-same-data", model: "leaderless.pml", defs: []string{"-DLIVENESS", "-DSAME_DATA"},
		pan: []string{"-a", "-f", "-m100000"}, why: "after replica 0 crashes for good, replica 1 still signs (weak fairness)"},
	{name: "leaderless/liveness-not-stuck", model: "leaderless.pml", defs: []string{"-DLIVENESS"},
		pan: []string{"-a", "-f", "-m100000"},
		why: "nodes wanting different data: after replica 0 crashes, replica 1's node gets a signature or a refusal at every level (no livelock)"},
	{name: "leaderless/mutant-reply-before-cas", model: "leaderless.pml",
		defs: []string{"-DONLY_S11", "-DMUT_REPLY_FIRST"},
		cc:   []string{"-DSAFETY", "-DCOLLAPSE"}, pan: []string{"-m100000"}, fail: true,
		why: "a replica replies before its CAS; the other replica's CAS for other data at that level commits and it replies too"},
	{name: "leaderless/mutant-no-reread-after-lost-race", model: "leaderless.pml",
		defs: []string{"-DONLY_S11", "-DMUT_NO_REREAD"},
		cc:   []string{"-DSAFETY", "-DCOLLAPSE"}, pan: []string{"-m100000"}, fail: true,
		why: "a lost race CASes its own signature again at the new index: it overwrites the winner's level with other data and replies"},
	{name: "leaderless/mutant-missing-as-empty", model: "leaderless.pml",
		defs: []string{"-DONLY_S11", "-DMAXDEL=1", "-DMUT_MISSING_AS_EMPTY"},
		cc:   []string{"-DSAFETY", "-DCOLLAPSE"}, pan: []string{"-m100000"}, fail: true,
		why: "a deleted record read as empty: a replica that never saw the released level creates it afresh with other data"},
	{name: "leaderless/mutant-timestamp-beyond", model: "leaderless.pml",
		defs: []string{"-DONLY_S11", "-DMUT_SIGN_OTHER_DATA"},
		cc:   []string{"-DSAFETY", "-DCOLLAPSE"}, pan: []string{"-m100000"}, fail: true,
		why: "the same level with other data (not only the timestamp) is signed instead of refused: two signatures at that level"},
	{name: "leaderless/mutant-unknown-as-success", model: "leaderless.pml",
		defs: []string{"-DONLY_S11", "-DMUT_UNKNOWN_AS_SUCCESS"},
		cc:   []string{"-DSAFETY", "-DCOLLAPSE"}, pan: []string{"-m100000"}, fail: true,
		why: "a CAS that timed out unapplied is taken as committed: two replicas reply at one level with different data"},
	{name: "leaderless/mutant-write-back-memory", model: "leaderless.pml",
		defs: []string{"-DONLY_S11", "-DMAXDEL=1", "-DMUT_WRITE_BACK_MEMORY"},
		cc:   []string{"-DSAFETY", "-DCOLLAPSE"}, pan: []string{"-m100000"}, fail: true,
		why: "a deleted record written back from a stale memory without the chain raise: it lands below a released level, which is signed again"},
	{name: "leaderless/exception-node-behind", model: "leaderless.pml",
		defs: []string{"-DONLY_S11", "-DMAXDEL=1", "-DNODE_LAG"},
		cc:   []string{"-DSAFETY", "-DCOLLAPSE"}, pan: []string{"-m100000"}, fail: true,
		why: "finding F5 (F3 for the leaderless policy): the record deleted; a replica whose node reports one level behind the chain restores below the released level and signs it again"},
	{name: "leaderless/exception-restore-two-deletes", model: "leaderless.pml",
		defs: []string{"-DONLY_S11", "-DMAXDEL=2", "-DMAXCRASH=0", "-DSPLIT_RESTORE"},
		cc:   []string{"-DSAFETY", "-DCOLLAPSE"}, pan: []string{"-m100000"}, fail: true,
		why: "finding F6: a restore computed before a create that lands after a second delete is stale: below a level released in between"},

	// key-file mode
	{name: "keyfile/mutant-no-final-on-loss", model: "keyfile.pml", defs: []string{"-DMUT_NO_FINAL_ON_LOSS"},
		cc: []string{"-DSAFETY", "-DCOLLAPSE"}, pan: []string{"-m100000"}, fail: true,
		why: "finding F1 (fixed): a lease-lost release writes the clean marker without the final watermark; the standby's raise misses a height"},
	{name: "keyfile/safety-crash", model: "keyfile.pml",
		cc: []string{"-DSAFETY", "-DBITSTATE"}, pan: []string{"-w25", "-m100000"},
		why: "never two nodes with the key, one signer per height, the watermark never lowered (replica crash, node death, loss, delays)"},
	{name: "keyfile/safety-delete-key", model: "keyfile.pml", defs: []string{"-DDELKEY", "-DMAXCRASH=0"},
		cc: []string{"-DSAFETY", "-DBITSTATE"}, pan: []string{"-w24", "-m100000"},
		why: "the same, with the lock key deleted under the leader"},
	{name: "keyfile/liveness", model: "keyfile.pml", defs: []string{"-DLIVENESS"},
		cc: []string{"-DNFAIR=3"}, pan: []string{"-a", "-f", "-m200000"},
		why: "after the leader crashes, the standby loads the key (weak fairness, timely renews after the crash)"},
	{name: "keyfile/mutant-release-before-reap", model: "keyfile.pml", defs: []string{"-DMUT_RELEASE_FIRST"},
		cc: []string{"-DSAFETY", "-DBFS", "-DCOLLAPSE"}, fail: true,
		why: "a clean release before the reap: the standby takes at once and loads the key beside the running node"},
	{name: "keyfile/mutant-no-raise", model: "keyfile.pml", defs: []string{"-DMUT_NO_RAISE"},
		cc: []string{"-DSAFETY", "-DBFS", "-DCOLLAPSE"}, fail: true,
		why: "the new validator starts from its stale sign state and signs a height the old one signed"},
	{name: "keyfile/mutant-no-marker-check", model: "keyfile.pml", defs: []string{"-DDELKEY", "-DMUT_NO_MARKER"},
		cc: []string{"-DSAFETY", "-DBFS", "-DCOLLAPSE"}, fail: true,
		why: "the lock key deleted: the standby takes the absent key without waiting while the old node still runs"},
	{name: "keyfile/mutant-receive-time-deadline", model: "keyfile.pml",
		defs: []string{"-DDELKEY", "-DMUT_RECV_DEADLINE", "-DTTL=4", "-DMAXCRASH=0", "-DNO_NODE_DEATH", "-DMAXH=1"},
		cc:   []string{"-DSAFETY", "-DBFS", "-DCOLLAPSE"}, fail: true,
		why: "late renew answers stretch the deadline past the standby's unclean wait after the key was deleted"},
	{name: "keyfile/receive-time-deadline-control", model: "keyfile.pml",
		defs: []string{"-DDELKEY", "-DTTL=4", "-DMAXCRASH=0", "-DNO_NODE_DEATH", "-DMAXH=1"},
		cc:   []string{"-DSAFETY", "-DBITSTATE"}, pan: []string{"-w24", "-m100000"},
		why: "the previous scenario with send-time deadlines holds"},
}

// restoreLean are the switches of the RESTORE mutants and exceptions.
var restoreLean = []string{"-DRESTORE", "-DONLY_S1", "-DMAXCRASH=0", "-DLEAN"}

var (
	reErrors = regexp.MustCompile(`errors: (\d+)`)
	reStored = regexp.MustCompile(`(\d+) states, stored`)
	reHash   = regexp.MustCompile(`hash factor: ([0-9.e+]+)`)
)

func TestModels(t *testing.T) {
	for _, tool := range []string{"spin", "gcc"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s not found: install it (scripts/install-deps.sh)", tool)
			}
			t.Skipf("%s not found; the model checks need spin and gcc", tool)
		}
	}
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	sem := make(chan struct{}, 2) // the machine has 2 cores
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			sem <- struct{}{}
			defer func() { <-sem }()
			runCheck(t, dir, c)
		})
	}
}

func runCheck(t *testing.T, src string, c check) {
	work := t.TempDir()
	model, err := os.ReadFile(filepath.Join(src, c.model))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(work, c.model), model, 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(name string, args ...string) string {
		cmd := exec.Command(name, args...)
		cmd.Dir = work
		out, err := cmd.CombinedOutput()
		if err != nil && name != "./pan" {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	start := time.Now()
	run("spin", append(append([]string{}, c.defs...), "-a", c.model)...)
	run("gcc", append(append([]string{"-O2", "-w", "-DMEMLIM=1500", "-o", "pan"}, c.cc...), "pan.c")...)
	out := run("./pan", c.pan...)
	took := time.Since(start)
	m := reErrors.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no result from pan:\n%s", out)
	}
	errs, _ := strconv.Atoi(m[1])
	states := "?"
	if s := reStored.FindStringSubmatch(out); s != nil {
		states = s[1]
	}
	if h := reHash.FindStringSubmatch(out); h != nil {
		states += " (bitstate, hash factor " + h[1] + ")"
	}
	_, trailErr := os.Stat(filepath.Join(work, c.model+".trail"))
	trail := trailErr == nil
	t.Logf("%s: %s states, errors %d, trail %v, %s (%s)", c.name, states, errs, trail, took.Round(10*time.Millisecond), c.why)
	if strings.Contains(out, "out of memory") || strings.Contains(out, "max search depth too small") ||
		strings.Contains(out, "reached -DMEMLIM bound") ||
		!c.fail && strings.Contains(out, "Search not completed") {
		t.Errorf("search incomplete:\n%s", out)
	}
	switch {
	case c.fail && (errs == 0 || !trail):
		t.Errorf("expected a counterexample, spin found none (a mutant or documented exception that passes means the model no longer checks what it claims):\n%s", out)
	case !c.fail && errs != 0:
		t.Errorf("expected no error, spin found %d; replay with: spin -t -p %s %s\n%s",
			errs, strings.Join(c.defs, " "), c.model, out)
	}
}
