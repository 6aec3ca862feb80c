package freeport

import (
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// The child side of TestTakeHeldAcrossProcesses: it tries to take a port
// of the range its parent holds.
func TestMain(m *testing.M) {
	if r := os.Getenv("FREEPORT_CHILD_RANGE"); r != "" {
		lo, _ := strconv.Atoi(r)
		p, err := takeIn(lo, lo+4)
		switch {
		case err == nil:
			os.Stdout.WriteString("took " + strconv.Itoa(p) + "\n")
			os.Exit(3)
		case !strings.Contains(err.Error(), "is free"):
			os.Stdout.WriteString(err.Error() + "\n")
			os.Exit(4)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestTakeIsUsableAndNeverRepeated(t *testing.T) {
	seen := map[int]bool{}
	for range 20 {
		p, err := Take()
		if err != nil {
			t.Fatal(err)
		}
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		seen[p] = true
		lo, hi := portRange()
		if p < lo || p > hi {
			t.Fatalf("port %d outside %d..%d", p, lo, hi)
		}
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			t.Fatalf("listen on the port Take returned: %v", err)
		}
		l.Close()
	}
}

// TestTakeHeldAcrossProcesses holds every port of a small range and checks
// that another process cannot take any of them, although nothing listens
// on them.
func TestTakeHeldAcrossProcesses(t *testing.T) {
	// Lock files of its own: another package's test holds none of them.
	t.Setenv("TMPDIR", t.TempDir())
	lo := 0
	for try := range 50 {
		cand := 11000 + try*97
		ok := true
		for p := cand; p <= cand+4; p++ {
			if handed[p] || !bindable(p) {
				ok = false
			}
		}
		if ok {
			lo = cand
			break
		}
	}
	if lo == 0 {
		t.Skip("no five bindable ports in a row found")
	}
	for range 5 {
		if _, err := takeIn(lo, lo+4); err != nil {
			t.Fatalf("taking the range %d..%d: %v", lo, lo+4, err)
		}
	}
	if _, err := takeIn(lo, lo+4); err == nil {
		t.Fatal("a sixth port taken from a range of five")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "FREEPORT_CHILD_RANGE="+strconv.Itoa(lo))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("another process took a port this one holds: %v\n%s", err, out)
	}
}

func TestPortRangeBelowEphemeral(t *testing.T) {
	elo, ehi, err := ephemeral()
	if err != nil {
		t.Skip(err)
	}
	lo, hi := portRange()
	if hi >= elo && lo <= ehi && !(lo == 10000 && hi == 65535) {
		t.Fatalf("range %d..%d overlaps the ephemeral range %d..%d", lo, hi, elo, ehi)
	}
}

// TestDirRefusesALink: a lock directory that is a link (placed by another
// user in a shared /tmp) is refused, naming the fix.
func TestDirRefusesALink(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	if err := os.Symlink(t.TempDir(), Dir()); err != nil {
		t.Fatal(err)
	}
	_, err := takeIn(20000, 20010)
	if err == nil || !strings.Contains(err.Error(), "remove it") {
		t.Fatalf("Take with %s a link: %v, want a refusal", Dir(), err)
	}
}
