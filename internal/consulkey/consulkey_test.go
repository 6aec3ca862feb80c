package consulkey

import "testing"

// The layout is a wire format: replicas of different versions share it, and
// operators' ACL policies name it. A change here is a migration.
func TestLayout(t *testing.T) {
	v := Validator("abc")
	for _, tc := range []struct{ got, want string }{
		{v.Prefix(), "valguard/abc/"},
		{v.Leader(), "valguard/abc/leader"},
		{v.Watermark(), "valguard/abc/watermark"},
		{v.Reports(), "valguard/abc/replicas/"},
		{v.Report("r1"), "valguard/abc/replicas/r1"},
		{v.Control(), "valguard/abc/control/"},
		{v.Drains(), "valguard/abc/control/drain/"},
		{v.Drain("r1"), "valguard/abc/control/drain/r1"},
		{v.Handover(), "valguard/abc/control/handover"},
		{v.ElectionSession("r1"), "valguard/abc/r1"},
		{v.ReportSession("r1"), "valguard-report/abc/r1"},
		{v.AccessCheckSession(), "valguard-access-check/abc"},
		{Root(), "valguard/"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

func TestLeaderOf(t *testing.T) {
	for _, tc := range []struct {
		key  string
		want Validator
		ok   bool
	}{
		{"valguard/abc/leader", "abc", true},
		{"valguard/abc/watermark", "", false},
		{"valguard/abc/replicas/leader", "", false},
		{"valguard//leader", "", false},
		{"other/abc/leader", "", false},
		{"valguard/abc", "", false},
	} {
		got, ok := LeaderOf(tc.key)
		if got != tc.want || ok != tc.ok {
			t.Errorf("LeaderOf(%q) = %q, %v; want %q, %v", tc.key, got, ok, tc.want, tc.ok)
		}
	}
}
