package homelock

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A child process that takes the lock, says so and waits for stdin to
// close: the cross-process holder.
func TestMain(m *testing.M) {
	if dir := os.Getenv("HOMELOCK_TEST_HOLD"); dir != "" {
		l, err := Acquire(dir)
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println("locked")
		bufio.NewReader(os.Stdin).ReadString('\n')
		l.Close()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestAcquireCreatesTheDirAndRecordsTheHolder(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "valguard")
	l, err := Acquire(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("dir %v (%v), want mode 0700", fi, err)
	}
	if got := read(t, l.Path()); !strings.HasPrefix(got, strconv.Itoa(os.Getpid())+"\n") {
		t.Fatalf("lock file %q does not start with our PID", got)
	}
}

func TestAcquireDoesNotCreateAMissingHome(t *testing.T) {
	home := filepath.Join(t.TempDir(), "no-such-home")
	if _, err := Acquire(filepath.Join(home, "valguard")); err == nil {
		t.Fatal("Acquire created a lock under a missing home")
	}
	if _, err := os.Stat(home); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the missing home was created (%v)", err)
	}
}

func TestSecondLockInOneProcessIsRefused(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "valguard")
	l, err := Acquire(dir)
	if err != nil {
		t.Fatal(err)
	}
	before := read(t, l.Path())
	_, err = Acquire(dir)
	if !errors.Is(err, ErrHeld) {
		t.Fatalf("second Acquire = %v, want ErrHeld", err)
	}
	for _, want := range []string{fmt.Sprintf("pid %d", os.Getpid()), "stop it, or give this one another --node-home"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	if read(t, l.Path()) != before {
		t.Fatal("the refusal changed the lock file")
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l2, err := Acquire(dir)
	if err != nil {
		t.Fatalf("Acquire after Close: %v", err)
	}
	l2.Close()
}

func TestLockAcrossProcessesDiesWithTheHolder(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "valguard")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "HOMELOCK_TEST_HOLD="+dir)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "locked\n" {
		t.Fatalf("child said %q (%v)", line, err)
	}
	before := read(t, filepath.Join(dir, FileName))
	_, err = Acquire(dir)
	if !errors.Is(err, ErrHeld) {
		t.Fatalf("Acquire while another process holds the lock = %v, want ErrHeld", err)
	}
	if want := fmt.Sprintf("pid %d (%s", cmd.Process.Pid, os.Args[0]); !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not name the holder %q", err, want)
	}
	if read(t, filepath.Join(dir, FileName)) != before {
		t.Fatal("the refusal changed the lock file")
	}
	// SIGKILL: no Close, the kernel drops the lock with the process.
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for {
		l, err := Acquire(dir)
		if err == nil {
			l.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("lock still held after its holder died: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestLockIsNotInheritedByChildren(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "valguard")
	l, err := Acquire(dir)
	if err != nil {
		t.Fatal(err)
	}
	// A child started while we hold the lock (as the node is), outliving
	// our Close, must not keep it.
	child := exec.Command("sleep", "30")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = child.Process.Kill(); _ = child.Wait() }()
	l.Close()
	l2, err := Acquire(dir)
	if err != nil {
		t.Fatalf("a child kept the lock: %v", err)
	}
	l2.Close()
}

func TestSymlinkAtTheLockPathIsRefused(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "valguard")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(t.TempDir(), "elsewhere")
	if err := os.Symlink(target, filepath.Join(dir, FileName)); err != nil {
		t.Fatal(err)
	}
	if _, err := Acquire(dir); err == nil {
		t.Fatal("Acquire followed a symlink at the lock path")
	}
	if _, err := os.Lstat(target); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("the symlink's target was created")
	}
}
