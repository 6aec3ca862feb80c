package localnet

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"
)

// Log lines that show a validator signed two different votes for the same
// height, round and step: the first is logged by the node that did it, the
// second by its peers.
var conflictingVoteMarkers = []string{
	"found conflicting vote from ourselves",
	"conflicting votes from validator",
}

// ConflictingVoteLines returns every line of the given node logs that
// reports a conflicting vote, each prefixed with "path: ". A double sign
// that never reaches evidence (e.g. a node re-signing old heights) shows
// only here. A missing file is an error.
func ConflictingVoteLines(paths ...string) ([]string, error) {
	var out []string
	for _, path := range paths {
		f, err := os.Open(path)
		if err != nil {
			return out, fmt.Errorf("localnet: %w", err)
		}
		lines, err := matchLines(f, conflictingVoteMarkers)
		f.Close()
		if err != nil {
			return out, fmt.Errorf("localnet: read %s: %w", path, err)
		}
		for _, l := range lines {
			out = append(out, path+": "+l)
		}
	}
	return out, nil
}

// matchLines returns the lines of r that contain any of markers. Lines may
// be of any length.
func matchLines(r io.Reader, markers []string) ([]string, error) {
	var out []string
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadString('\n')
		if line != "" {
			line = strings.TrimRight(line, "\r\n")
			for _, m := range markers {
				if strings.Contains(line, m) {
					out = append(out, line)
					break
				}
			}
		}
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}
