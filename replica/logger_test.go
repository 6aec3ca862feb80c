package replica

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestNewLogger(t *testing.T) {
	for _, tc := range []struct {
		name, level, format string
		// want is in the line an Info event writes ("" for none), err in
		// the error.
		want, err string
	}{
		{name: "default format off a terminal", level: "info", want: `"message":"hello"`},
		{name: "json", level: "debug", format: "json", want: `"level":"info"`},
		{name: "console", level: "info", format: "console", want: "INF"},
		{name: "level above the event", level: "warn", format: "json"},
		{name: "unknown level", level: "loud", err: `--log-level "loud": want debug, info, warn or error`},
		{name: "no level", level: "", err: `--log-level "": want debug, info, warn or error`},
		{name: "unknown format", level: "info", format: "xml", err: `--log-format "xml": want json or console`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := os.Create(filepath.Join(t.TempDir(), "log"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			log, err := NewLogger(f, tc.level, tc.format)
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			log.Info().Msg("hello")
			out, err := os.ReadFile(f.Name())
			if err != nil {
				t.Fatal(err)
			}
			if tc.want == "" {
				if len(out) != 0 {
					t.Fatalf("logged %q, want nothing", out)
				}
				return
			}
			if !strings.Contains(string(out), tc.want) {
				t.Fatalf("logged %q, want %q in it", out, tc.want)
			}
			if tc.format != "console" && !json.Valid(out) {
				t.Fatalf("logged %q: not JSON", out)
			}
		})
	}
}
