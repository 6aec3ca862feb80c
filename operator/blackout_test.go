package operator

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/valguard/valguard/internal/testnet"
)

func TestBlackoutCheck(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, r.URL.Query().Get("body"))
	}))
	defer srv.Close()
	dead := fmt.Sprintf("http://127.0.0.1:%d/", testnet.FreePort(t))
	cases := []struct {
		name, url, field, command string
		open                      bool
		why                       string
	}{
		{"field true", srv.URL + `?body={"is_confirmation_poc_active":true}`, "is_confirmation_poc_active", "", true, "is true"},
		{"field false", srv.URL + `?body={"is_confirmation_poc_active":false}`, "is_confirmation_poc_active", "", false, ""},
		{"nested path", srv.URL + `?body={"epoch":{"poc":false}}`, "epoch.poc", "", false, ""},
		{"field missing", srv.URL + `?body={"phase":1}`, "is_confirmation_poc_active", "", true, "missing"},
		{"not a boolean", srv.URL + `?body={"x":"yes"}`, "x", "", true, "not true or false"},
		{"not JSON", srv.URL + `?body=hello`, "x", "", true, "did not answer JSON"},
		{"no answer", dead, "x", "", true, "does not answer"},
		{"command fails", "", "", "exit 3", true, "exit status 3"},
		{"command succeeds", "", "", "true", false, ""},
		{"url closed, command fails", srv.URL + `?body={"x":false}`, "x", "false", true, "blackout-command"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := &BlackoutCheck{URL: tc.url, Field: tc.field, Command: tc.command, Timeout: 2 * time.Second}
			open, why := b.Open(t.Context())
			if open != tc.open || !strings.Contains(why, tc.why) {
				t.Fatalf("open %v (%q), want %v with %q", open, why, tc.open, tc.why)
			}
		})
	}
}

func TestNewBlackoutCheck(t *testing.T) {
	cases := []struct {
		name, url, field, command string
		none                      bool
		err                       string
	}{
		{"none", "", "", "", true, ""},
		{"url without field", "http://x", "", "", false, "--blackout-url needs --blackout-field"},
		{"field without url", "", "f", "", false, "--blackout-field needs --blackout-url"},
		{"url and field", "http://x", "f", "", false, ""},
		{"command", "", "", "true", false, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, err := NewBlackoutCheck(tc.url, tc.field, tc.command)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || (b == nil) != tc.none {
				t.Fatalf("check %+v, err %v; want none: %v", b, err, tc.none)
			}
			if open, _ := b.Open(t.Context()); tc.none && open {
				t.Fatal("no check is open")
			}
		})
	}
}
