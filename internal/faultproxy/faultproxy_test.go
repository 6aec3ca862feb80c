package faultproxy

import (
	"bufio"
	"errors"
	"net"
	"os"
	"testing"
	"time"
)

// echoServer answers every line with the same line.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if _, err := c.Write([]byte(line)); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// roundTrip sends one line and waits at most timeout for the echo.
func roundTrip(t *testing.T, c net.Conn, r *bufio.Reader, timeout time.Duration) (time.Duration, error) {
	t.Helper()
	start := time.Now()
	if err := c.SetDeadline(start.Add(timeout)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("ping\n")); err != nil {
		return 0, err
	}
	line, err := r.ReadString('\n')
	if err != nil {
		return 0, err
	}
	if line != "ping\n" {
		t.Fatalf("echo = %q, want %q", line, "ping\n")
	}
	return time.Since(start), nil
}

func dial(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c, bufio.NewReader(c)
}

func TestPassForwards(t *testing.T) {
	t.Parallel()
	p := New(t, echoServer(t))
	c, r := dial(t, p.Addr())
	for range 3 {
		if _, err := roundTrip(t, c, r, 2*time.Second); err != nil {
			t.Fatalf("round trip through pass proxy: %v", err)
		}
	}
}

func TestBlackholeDropsOnOpenAndNewConnections(t *testing.T) {
	t.Parallel()
	p := New(t, echoServer(t))
	open, openR := dial(t, p.Addr())
	if _, err := roundTrip(t, open, openR, 2*time.Second); err != nil {
		t.Fatalf("round trip before blackhole: %v", err)
	}

	p.Blackhole()
	if _, err := roundTrip(t, open, openR, 300*time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("open connection under blackhole: err = %v, want deadline exceeded", err)
	}
	fresh, freshR := dial(t, p.Addr()) // still accepted
	if _, err := roundTrip(t, fresh, freshR, 300*time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("new connection under blackhole: err = %v, want deadline exceeded", err)
	}

	p.Pass()
	again, againR := dial(t, p.Addr())
	if _, err := roundTrip(t, again, againR, 2*time.Second); err != nil {
		t.Fatalf("new connection after blackhole lifted: %v", err)
	}
}

func TestDelayHoldsEachDirection(t *testing.T) {
	t.Parallel()
	p := New(t, echoServer(t))
	c, r := dial(t, p.Addr())
	const d = 150 * time.Millisecond
	p.Delay(d)
	rtt, err := roundTrip(t, c, r, 5*time.Second)
	if err != nil {
		t.Fatalf("round trip under delay: %v", err)
	}
	if rtt < 2*d {
		t.Fatalf("round trip took %s under Delay(%s), want at least %s (both directions)", rtt, d, 2*d)
	}
	p.Pass()
	rtt, err = roundTrip(t, c, r, 5*time.Second)
	if err != nil {
		t.Fatalf("round trip after delay lifted: %v", err)
	}
	if rtt >= d {
		t.Fatalf("round trip took %s after Pass, want under %s", rtt, d)
	}
}

func TestCloseEndsConnections(t *testing.T) {
	t.Parallel()
	p := New(t, echoServer(t))
	c, r := dial(t, p.Addr())
	if _, err := roundTrip(t, c, r, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	p.Close()
	if _, err := roundTrip(t, c, r, 2*time.Second); err == nil {
		t.Fatal("round trip succeeded after Close")
	}
	if _, err := net.DialTimeout("tcp", p.Addr(), time.Second); err == nil {
		t.Fatal("dial succeeded after Close")
	}
	p.Close() // idempotent
}
