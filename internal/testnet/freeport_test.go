package testnet

import (
	"net"
	"strconv"
	"testing"
)

func TestFreePortIsUsableAndNeverRepeated(t *testing.T) {
	seen := map[int]bool{}
	for range 20 {
		p := FreePort(t)
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		seen[p] = true
	}
	p := FreePort(t)
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
	if err != nil {
		t.Fatalf("listen on the port FreePort returned: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}
