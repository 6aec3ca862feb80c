package localnet

import (
	"bufio"
	"encoding/json"
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

// ValguardEvents reads valguard's own log events (JSON lines with a
// message) from a log file that may also hold its node's output.
func ValguardEvents(path string) []map[string]any {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var ev map[string]any
		if json.Unmarshal(sc.Bytes(), &ev) == nil && ev["message"] != nil {
			out = append(out, ev)
		}
	}
	return out
}

// LastNodePID is the pid of the last node valguard logged as started, 0 if
// none.
func LastNodePID(path string) int {
	pid := 0
	for _, ev := range ValguardEvents(path) {
		if p, ok := ev["pid"].(float64); ok && ev["message"] == "node started" {
			pid = int(p)
		}
	}
	return pid
}
