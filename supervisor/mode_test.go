package supervisor

import (
	"fmt"
	"testing"

	"github.com/rs/zerolog"
)

// New chooses the sign mode once, from Config.Signer: the state machine
// asks nothing else which mode it runs.
func TestNewChoosesSignMode(t *testing.T) {
	for _, tc := range []struct {
		name   string
		signer Signer
		want   string
	}{
		{"no signer: the key-file mode", nil, "*supervisor.keyFile"},
		{"a signer: the signer mode", &fakeSigner{j: &journal{}}, "*supervisor.signerMode"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New(Config{Node: &fakeNode{}, Elector: &fakeElector{}, Signer: tc.signer, Log: zerolog.Nop()})
			if err != nil {
				t.Fatal(err)
			}
			if got := fmt.Sprintf("%T", s.mode); got != tc.want {
				t.Fatalf("sign mode %s, want %s", got, tc.want)
			}
			if sm, ok := s.mode.(*signerMode); ok && sm.signer != tc.signer {
				t.Fatal("the signer mode does not use Config.Signer")
			}
		})
	}
}
