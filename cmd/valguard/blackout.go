package main

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
	"github.com/urfave/cli/v2"
)

// blackoutFlags are the flags of the commands that move leadership on
// purpose (handover, drain): a window during which doing so is unsafe.
func blackoutFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "blackout-url", Usage: "GET this URL; the JSON field --blackout-field true means hand-overs are unsafe now (Gonka: http://127.0.0.1:8000/v1/epochs/latest)", EnvVars: env("blackout-url")},
		&cli.StringFlag{Name: "blackout-field", Usage: "the field of --blackout-url's JSON answer, a gjson path (Gonka: is_confirmation_poc_active)", EnvVars: env("blackout-field")},
		&cli.StringFlag{Name: "blackout-command", Usage: "run this with sh -c; a non-zero exit means hand-overs are unsafe now", EnvVars: env("blackout-command")},
		&cli.BoolFlag{Name: "no-wait", Usage: "refuse rather than wait when a blackout window is open"},
		&cli.BoolFlag{Name: "force", Usage: "go ahead during a blackout window or over another hand-over request (loudly)"},
	}
}

// errBlackout: a blackout window is open (or its check failed, which
// counts as open).
var errBlackout = errors.New("blackout window open: a voluntary hand-over is unsafe now")

// blackoutCheck is the configured check; nil when none is.
type blackoutCheck struct {
	url, field, command string
	timeout             time.Duration
}

func newBlackoutCheck(c *cli.Context) (*blackoutCheck, error) {
	b := &blackoutCheck{url: c.String("blackout-url"), field: c.String("blackout-field"), command: c.String("blackout-command"), timeout: 5 * time.Second}
	switch {
	case b.url != "" && b.field == "":
		return nil, errors.New("--blackout-url needs --blackout-field: the JSON field that is true while hand-overs are unsafe (Gonka: is_confirmation_poc_active)")
	case b.url == "" && b.field != "":
		return nil, errors.New("--blackout-field needs --blackout-url")
	case b.url == "" && b.command == "":
		return nil, nil
	}
	return b, nil
}

// open says whether the window is open now, and why; a check that fails
// counts as open ("unsafe"), with the reason.
func (b *blackoutCheck) open(ctx context.Context) (bool, string) {
	if b.url != "" {
		if open, why := b.openURL(ctx); open {
			return true, why
		}
	}
	if b.command != "" {
		cctx, cancel := context.WithTimeout(ctx, b.timeout)
		defer cancel()
		out, err := exec.CommandContext(cctx, "sh", "-c", b.command).CombinedOutput()
		if err != nil {
			return true, fmt.Sprintf("--blackout-command %q: %v %s", b.command, err, strings.TrimSpace(string(out)))
		}
	}
	return false, ""
}

func (b *blackoutCheck) openURL(ctx context.Context) (bool, string) {
	cctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(cctx, http.MethodGet, b.url, nil)
	if err != nil {
		return true, fmt.Sprintf("--blackout-url %s: %v (treated as unsafe)", b.url, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return true, fmt.Sprintf("--blackout-url %s does not answer: %v (treated as unsafe; fix the URL or the service, or use --force)", b.url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil || resp.StatusCode != http.StatusOK {
		return true, fmt.Sprintf("--blackout-url %s answered %s %v (treated as unsafe)", b.url, resp.Status, err)
	}
	if !json.Valid(body) {
		return true, fmt.Sprintf("--blackout-url %s did not answer JSON (treated as unsafe)", b.url)
	}
	v := gjson.GetBytes(body, b.field)
	switch {
	case !v.Exists():
		return true, fmt.Sprintf("--blackout-url %s: field %q missing from the answer (treated as unsafe; check --blackout-field)", b.url, b.field)
	case v.Type != gjson.True && v.Type != gjson.False:
		return true, fmt.Sprintf("--blackout-url %s: field %q is %s, not true or false (treated as unsafe)", b.url, b.field, v.Raw)
	case v.Bool():
		return true, fmt.Sprintf("--blackout-url %s: %s is true", b.url, b.field)
	}
	return false, ""
}

// awaitBlackout returns nil once no blackout window is open: at once
// with force (saying so loudly), an error wrapping errBlackout with
// noWait, else after waiting (ctx bounds the wait).
func awaitBlackout(ctx context.Context, c *cli.Context, b *blackoutCheck) error {
	if b == nil {
		return nil
	}
	open, why := b.open(ctx)
	if !open {
		return nil
	}
	switch {
	case c.Bool("force"):
		fmt.Fprintf(c.App.ErrWriter, "valguard: WARNING: --force: going ahead although %s: %s\n", errBlackout, why)
		return nil
	case c.Bool("no-wait"):
		return fmt.Errorf("%w: %s; nothing changed (wait for the window to close, or drop --no-wait to wait, or --force)", errBlackout, why)
	}
	fmt.Fprintf(c.App.Writer, "waiting for the blackout window to close: %s\n", why)
	start := time.Now()
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: still open after %s: %s; nothing changed", errBlackout, time.Since(start).Round(time.Second), why)
		case <-time.After(time.Second):
		}
		if open, why = b.open(ctx); !open {
			fmt.Fprintf(c.App.Writer, "blackout window closed after %s\n", time.Since(start).Round(100*time.Millisecond))
			return nil
		}
	}
}
