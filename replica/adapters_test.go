package replica

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/valguard/valguard/supervisor"
)

// otherSession is a supervisor.Session that is not the election's.
type otherSession struct{ supervisor.Session }

// A session that cannot fence is never granted signing: the run ends.
func TestSeamRefusesASessionThatCannotFence(t *testing.T) {
	err := seam{}.Grant(context.Background(), otherSession{})
	if !errors.Is(err, supervisor.ErrFatal) || !strings.Contains(err.Error(), "cannot fence") {
		t.Fatalf("Grant: %v, want ErrFatal", err)
	}
}

// A repeated failure is logged once, then at most once per interval.
func TestErrorLimiter(t *testing.T) {
	var buf bytes.Buffer
	l := &errorLimiter{log: zerolog.New(&buf), every: 50 * time.Millisecond}
	for range 5 {
		l.warn(errors.New("down"), "retrying")
	}
	if n := strings.Count(buf.String(), "retrying"); n != 1 {
		t.Fatalf("logged %d times at once, want 1:\n%s", n, buf.String())
	}
	time.Sleep(60 * time.Millisecond)
	l.warn(errors.New("down"), "retrying")
	if n := strings.Count(buf.String(), "retrying"); n != 2 {
		t.Fatalf("logged %d times after the interval, want 2", n)
	}
}

// The run's instance names the host, the boot and the absolute state
// directory; without a boot id there is none.
func TestInstance(t *testing.T) {
	boot, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		if got := instance("h", "d"); got != "" {
			t.Fatalf("instance without a boot id = %q", got)
		}
		return
	}
	abs, _ := filepath.Abs("d")
	want := "h/" + strings.TrimSpace(string(boot)) + ":" + abs
	if got := instance("h", "d"); got != want {
		t.Fatalf("instance = %q, want %q", got, want)
	}
}
