package consulclient

import (
	"slices"
	"strings"
	"testing"
)

// TestConsulURLs: --consul-url takes one address or several of one
// scheme; anything else is refused with the reason.
func TestConsulURLs(t *testing.T) {
	for _, tc := range []struct {
		in     string
		scheme string
		hosts  []string
		err    string
	}{
		{in: "http://127.0.0.1:8500", scheme: "http", hosts: []string{"127.0.0.1:8500"}},
		{in: "10.0.0.1:8500", scheme: "http", hosts: []string{"10.0.0.1:8500"}},
		{in: "https://a:8501, https://b:8501,https://c:8501", scheme: "https", hosts: []string{"a:8501", "b:8501", "c:8501"}},
		{in: "http://a:8500,https://b:8501", err: "same scheme"},
		{in: "http://a:8500,,http://b:8500", err: "empty address"},
		{in: "http://a:8500,a:8500", err: "given twice"},
		{in: "http://a:8500/v1", err: "want http://host:port"},
		{in: "ftp://a", err: "want http://host:port"},
	} {
		scheme, hosts, err := ParseURLs(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want one saying %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || scheme != tc.scheme || !slices.Equal(hosts, tc.hosts) {
			t.Errorf("%q: %s %v %v, want %s %v", tc.in, scheme, hosts, err, tc.scheme, tc.hosts)
		}
	}
}
