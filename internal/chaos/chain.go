package chaos

import (
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/valguard/valguard/internal/localnet"
)

// chainView is what the drill reads of the validator's chain: its head,
// which heights the validator signed (or, on NEAR, produced) and any sign
// of a double sign there.
type chainView interface {
	height(ctx context.Context) (int64, error)
	waitHeight(ctx context.Context, h int64) error
	signedAt(ctx context.Context, h int64) (bool, error)
	// signed lists the heights from..to the validator signed.
	signed(ctx context.Context, from, to int64) ([]int64, error)
	// findings scans heights from..to for double signs.
	findings(ctx context.Context, from, to int64) ([]string, error)
}

// cometChain reads the CometBFT localnet through a validator's RPC.
type cometChain struct {
	rpc, addr string
	power     int64 // the validator's power at the start
	logs      func() []string
}

func (c *cometChain) height(ctx context.Context) (int64, error) { return localnet.Height(ctx, c.rpc) }

func (c *cometChain) waitHeight(ctx context.Context, h int64) error {
	return localnet.WaitHeight(ctx, c.rpc, h)
}

func (c *cometChain) signedAt(ctx context.Context, h int64) (bool, error) {
	return localnet.SignedAt(ctx, c.rpc, c.addr, h)
}

func (c *cometChain) signed(ctx context.Context, from, to int64) ([]int64, error) {
	s, _, err := localnet.Signers(ctx, c.rpc, from, to, c.addr)
	return s, err
}

// findings: DuplicateVoteEvidence in the blocks, a conflicting vote in a
// node log, the power changed (localnet.DoubleSignFindings).
func (c *cometChain) findings(ctx context.Context, from, to int64) ([]string, error) {
	return localnet.DoubleSignFindings(ctx, c.rpc, c.addr, c.power, from, to, c.logs())
}

// standinChain is the neard stand-ins' chain: its head is a function of
// the shared genesis and block interval, and each replica's stand-in
// appends "HEIGHT ACCOUNT PID" to a journal of its own for every height
// it produced (internal/neardstandin). A height in two journals, or twice
// in one, is a double sign.
type standinChain struct {
	genesis  time.Time
	interval time.Duration
	account  string
	journals []string // one per replica, by index

	mu       sync.Mutex
	offsets  []int64
	partial  []string // an unfinished last line per journal
	produced map[int64][]string
	torn     []string // lines that are not "HEIGHT ACCOUNT PID": findings
}

func newStandinChain(genesis time.Time, interval time.Duration, account string, journals []string) *standinChain {
	return &standinChain{genesis: genesis, interval: interval, account: account, journals: journals,
		offsets: make([]int64, len(journals)), partial: make([]string, len(journals)), produced: map[int64][]string{}}
}

func (s *standinChain) height(context.Context) (int64, error) {
	return int64(time.Since(s.genesis) / s.interval), nil
}

func (s *standinChain) waitHeight(ctx context.Context, h int64) error {
	for {
		if now, _ := s.height(ctx); now >= h {
			return nil
		}
		if err := sleep(ctx, s.interval/4); err != nil {
			return err
		}
	}
}

// read takes in what the journals gained since the last read.
func (s *standinChain) read() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, path := range s.journals {
		f, err := os.Open(path)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return err
		}
		if _, err := f.Seek(s.offsets[i], io.SeekStart); err != nil {
			f.Close()
			return err
		}
		data, err := io.ReadAll(f)
		f.Close()
		if err != nil {
			return err
		}
		s.offsets[i] += int64(len(data))
		text := s.partial[i] + string(data)
		lines := strings.Split(text, "\n")
		s.partial[i] = lines[len(lines)-1]
		for _, line := range lines[:len(lines)-1] {
			f := strings.Fields(line)
			h, err := int64(0), error(nil)
			if len(f) == 3 {
				h, err = strconv.ParseInt(f[0], 10, 64)
			}
			if len(f) != 3 || err != nil {
				// A torn write could hide a height: not a pass.
				s.torn = append(s.torn, fmt.Sprintf("journal of r%d: unreadable line %q", i, line))
				continue
			}
			if f[1] != s.account {
				continue
			}
			s.produced[h] = append(s.produced[h], fmt.Sprintf("r%d (neard pid %s)", i, f[2]))
		}
	}
	return nil
}

func (s *standinChain) signedAt(_ context.Context, h int64) (bool, error) {
	if err := s.read(); err != nil {
		return false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.produced[h]) > 0, nil
}

func (s *standinChain) signed(_ context.Context, from, to int64) ([]int64, error) {
	if err := s.read(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []int64
	for h := range s.produced {
		if h >= from && h <= to {
			out = append(out, h)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out, nil
}

// findings looks at every height up to to, not only from on: a stand-in
// that produced a height late would otherwise slip between two scans.
func (s *standinChain) findings(_ context.Context, _, to int64) ([]string, error) {
	if err := s.read(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := append([]string(nil), s.torn...)
	for h, who := range s.produced {
		if h <= to && len(who) > 1 {
			out = append(out, fmt.Sprintf("height %d produced %d times: %s", h, len(who), strings.Join(who, ", ")))
		}
	}
	sort.Strings(out)
	return out, nil
}
