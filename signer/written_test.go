package signer

import "testing"

func TestWrittenBySigner(t *testing.T) {
	signed, err := Watermark{ChainID: "c", Height: 12, Step: 2, Signature: []byte{1}, SignBytes: []byte{2}}.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		value string
		want  bool
	}{
		{string(signed), true},
		{`{"chain_id":"c","height":"3","round":0,"step":1}`, true},
		{`{"height":"3","round":0,"step":1}`, false},                    // restart mode
		{`{"height":"3","round":0,"step":1,"signature":"AQ=="}`, false}, // restart mode with a signature
		{`{"chain_id":"","height":"3","round":0,"step":1}`, false},      // names no chain
		{``, false},
		{`not json`, false},
	} {
		if got := WrittenBySigner([]byte(tc.value)); got != tc.want {
			t.Errorf("WrittenBySigner(%q) = %v, want %v", tc.value, got, tc.want)
		}
	}
	if WrittenBySigner(nil) {
		t.Error("WrittenBySigner(nil) = true")
	}
}
