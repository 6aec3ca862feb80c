package operator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"time"

	"github.com/tidwall/gjson"
)

// ErrBlackout: a blackout window is open (or its check failed, which
// counts as open).
var ErrBlackout = errors.New("blackout window open: a voluntary hand-over is unsafe now")

// Blackout says whether a window during which moving leadership on
// purpose is unsafe is open now, and why.
type Blackout interface {
	Open(ctx context.Context) (bool, string)
}

// BlackoutCheck is the configured check: a URL's JSON field that is true
// while the window is open, a command that fails while it is, or both.
// A nil *BlackoutCheck is never open.
type BlackoutCheck struct {
	URL, Field, Command string
	// Timeout bounds one GET of URL and one run of Command.
	Timeout time.Duration
}

// NewBlackoutCheck checks the settings; nil, nil when none is set.
func NewBlackoutCheck(url, field, command string) (*BlackoutCheck, error) {
	b := &BlackoutCheck{URL: url, Field: field, Command: command, Timeout: 5 * time.Second}
	switch {
	case b.URL != "" && b.Field == "":
		return nil, errors.New("--blackout-url needs --blackout-field: the JSON field that is true while hand-overs are unsafe (Gonka: is_confirmation_poc_active)")
	case b.URL == "" && b.Field != "":
		return nil, errors.New("--blackout-field needs --blackout-url")
	case b.URL == "" && b.Command == "":
		return nil, nil
	}
	return b, nil
}

// Open says whether the window is open now, and why; a check that fails
// counts as open ("unsafe"), with the reason.
func (b *BlackoutCheck) Open(ctx context.Context) (bool, string) {
	if b == nil {
		return false, ""
	}
	if b.URL != "" {
		if open, why := b.openURL(ctx); open {
			return true, why
		}
	}
	if b.Command != "" {
		cctx, cancel := context.WithTimeout(ctx, b.Timeout)
		defer cancel()
		out, err := exec.CommandContext(cctx, "sh", "-c", b.Command).CombinedOutput()
		if err != nil {
			return true, fmt.Sprintf("--blackout-command %q: %v %s", b.Command, err, strings.TrimSpace(string(out)))
		}
	}
	return false, ""
}

func (b *BlackoutCheck) openURL(ctx context.Context) (bool, string) {
	cctx, cancel := context.WithTimeout(ctx, b.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(cctx, http.MethodGet, b.URL, nil)
	if err != nil {
		return true, fmt.Sprintf("--blackout-url %s: %v (treated as unsafe)", b.URL, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return true, fmt.Sprintf("--blackout-url %s does not answer: %v (treated as unsafe; fix the URL or the service, or use --force)", b.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil || resp.StatusCode != http.StatusOK {
		return true, fmt.Sprintf("--blackout-url %s answered %s %v (treated as unsafe)", b.URL, resp.Status, err)
	}
	if !json.Valid(body) {
		return true, fmt.Sprintf("--blackout-url %s did not answer JSON (treated as unsafe)", b.URL)
	}
	v := gjson.GetBytes(body, b.Field)
	switch {
	case !v.Exists():
		return true, fmt.Sprintf("--blackout-url %s: field %q missing from the answer (treated as unsafe; check --blackout-field)", b.URL, b.Field)
	case v.Type != gjson.True && v.Type != gjson.False:
		return true, fmt.Sprintf("--blackout-url %s: field %q is %s, not true or false (treated as unsafe)", b.URL, b.Field, v.Raw)
	case v.Bool():
		return true, fmt.Sprintf("--blackout-url %s: %s is true", b.URL, b.Field)
	}
	return false, ""
}

// blackoutPoll is how often a blackout window is checked again while
// the command waits for it to close.
const blackoutPoll = time.Second

// awaitBlackout returns nil once no blackout window is open: at once
// with force (saying so loudly), an error wrapping ErrBlackout with
// noWait, else after waiting (ctx bounds the wait).
func (v *Validator) awaitBlackout(ctx context.Context, b Blackout, force, noWait bool) error {
	if b == nil {
		return nil
	}
	open, why := b.Open(ctx)
	if !open {
		return nil
	}
	switch {
	case force:
		fmt.Fprintf(v.errOut(), "valguard: WARNING: --force: going ahead although %s: %s\n", ErrBlackout, why)
		return nil
	case noWait:
		return fmt.Errorf("%w: %s; nothing changed (wait for the window to close, or drop --no-wait to wait, or --force)", ErrBlackout, why)
	}
	fmt.Fprintf(v.out(), "waiting for the blackout window to close: %s\n", why)
	start := v.clock().Now()
	for {
		if sleep(ctx, v.clock(), blackoutPoll) != nil {
			return fmt.Errorf("%w: still open after %s: %s; nothing changed", ErrBlackout, v.since(start).Round(time.Second), why)
		}
		if open, why = b.Open(ctx); !open {
			fmt.Fprintf(v.out(), "blackout window closed after %s\n", v.since(start).Round(100*time.Millisecond))
			return nil
		}
	}
}
