package localnet

import (
	"bufio"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// ValguardState scrapes a valguard's /metrics at addr (host:port) and
// returns the state whose valguard_state series is 1; "" if none answers.
func ValguardState(addr string) string {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + addr + "/metrics")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if s, ok := strings.CutPrefix(sc.Text(), `valguard_state{state="`); ok && strings.HasSuffix(s, `"} 1`) {
			return strings.TrimSuffix(s, `"} 1`)
		}
	}
	return ""
}

// Alive reports whether pid runs; a zombie (exited, not reaped) does not.
func Alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(f) > 0 && f[0] != "Z"
}
