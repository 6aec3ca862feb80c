package chain

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/valguard/valguard/internal/setting"
)

func TestFlagError(t *testing.T) {
	k := Kind{Name: "a", SettingFlags: map[string]string{"Network": "a-network", "Home": "a-home"}}
	plain := errors.New("plain")
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{name: "the kind's own setting", err: setting.Errorf("Network", "bad network"), want: "--a-network: bad network"},
		{name: "a setting every adapter has", err: setting.Errorf("MaxBlockAge", "negative"), want: "--max-block-age: negative"},
		{name: "the kind's map first", err: setting.Errorf("Home", "no home"), want: "--a-home: no home"},
		{name: "wrapped", err: errors.Join(errors.New("build"), setting.Errorf("ValidatorKey", "no such file")), want: "--validator-key: build\nno such file"},
		{name: "a setting without a flag", err: setting.Errorf("Other", "other"), want: "other"},
		{name: "not a setting", err: plain, want: "plain"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := k.FlagError(tc.err)
			if got.Error() != tc.want {
				t.Fatalf("FlagError = %q, want %q", got, tc.want)
			}
			if !errors.Is(got, tc.err) {
				t.Fatalf("FlagError = %v: does not wrap %v", got, tc.err)
			}
		})
	}
	if k.FlagError(nil) != nil {
		t.Fatal("FlagError(nil) is not nil")
	}
}

// keyKind is a kind whose keys are files starting with prefix; its lock
// id is the rest of the file. Of another file it says why it is not one,
// which counts only when it is asked as the fallback.
func keyKind(name, credential, prefix string) Kind {
	return Kind{Name: name, SignModes: []SignMode{SignRestart}, Build: build, KeyCredential: credential,
		KeyID: func(path string, data []byte) (string, bool, error) {
			id, ok := strings.CutPrefix(string(data), prefix)
			if !ok {
				return "", false, setting.Errorf("ValidatorKey", "%s is not a %s key", path, name)
			}
			return id, true, nil
		}}
}

func TestKeyID(t *testing.T) {
	withKinds(t,
		keyKind("a", "a_key.json", "a:"),
		Kind{Name: "a-remote", SignModes: []SignMode{SignSigner}, Build: build, KeyCredential: "a_key.json"},
		keyKind("b", "b_key.json", "b:"),
	)
	if got, want := keyCredentials(), []string{"a_key.json", "b_key.json"}; !slices.Equal(got, want) {
		t.Fatalf("keyCredentials = %q, want %q", got, want)
	}
	dir := t.TempDir()
	file := func(content string) string {
		p := filepath.Join(dir, content)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// creds is a credentials directory holding the files named.
	creds := func(files ...string) func(flag, name string, required bool) (string, error) {
		return func(flag, name string, required bool) (string, error) {
			if flag != "validator-key" || required {
				t.Errorf("credential(%q, %q, %v)", flag, name, required)
			}
			for _, f := range files {
				if filepath.Base(f) == name {
					return f, nil
				}
			}
			return "", nil
		}
	}
	bCred := filepath.Join(t.TempDir(), "b_key.json")
	if err := os.WriteFile(bCred, []byte("b:ID3"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, path, fallback string
		creds                []string
		want, err            string
	}{
		{name: "the fallback kind's key", path: file("a:ID1"), fallback: "a", want: "ID1"},
		{name: "another kind's key", path: file("b:ID2"), fallback: "a", want: "ID2"},
		{name: "no kind's key: the fallback's error", path: file("junk"), fallback: "a", err: "--validator-key: " + dir + "/junk is not a a key"},
		{name: "another fallback", path: file("junk"), fallback: "b", err: "--validator-key: " + dir + "/junk is not a b key"},
		{name: "no such file", path: filepath.Join(dir, "nope"), fallback: "a", err: "--validator-key: open " + dir + "/nope: no such file or directory"},
		{name: "a fallback without KeyID", path: file("junk"), fallback: "a-remote", err: `no node type "a-remote" to read it`},
		{name: "a credential", creds: []string{bCred}, fallback: "a", want: "ID3"},
		{name: "the path over a credential", path: file("a:ID1"), creds: []string{bCred}, fallback: "a", want: "ID1"},
		{name: "no key", fallback: "a", err: ErrNoKey.Error()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := KeyID(tc.path, creds(tc.creds...), tc.fallback)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("KeyID = %q, %v; want error %q", got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("KeyID = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestOpen(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "key.json")
	if err := os.WriteFile(key, []byte("k"), 0o600); err != nil {
		t.Fatal(err)
	}
	loose := filepath.Join(dir, "loose.json")
	if err := os.WriteFile(loose, []byte("k"), 0o644); err != nil {
		t.Fatal(err)
	}
	var built Input
	k := Kind{Name: "a", KeyCredential: "a_key.json", SettingFlags: map[string]string{"Network": "a-network"},
		Build: func(s Settings, in Input) (Setup, error) {
			built = in
			if s.String("a-network") == "bad" {
				return Setup{}, setting.Errorf("Network", "unknown network")
			}
			return Setup{LockID: "ID"}, nil
		}}
	for _, tc := range []struct {
		name, path string
		set        settings
		err        string
	}{
		{name: "a private key", path: key},
		{name: "a key others can read", path: loose, err: "chmod"},
		{name: "no key", err: "no key"},
		{name: "a setting error names the flag", path: key, set: settings{"a-network": "bad"}, err: "--a-network: unknown network"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			built = Input{}
			cred := func(flag, name string, required bool) (string, error) {
				if flag != "validator-key" || name != "a_key.json" || !required {
					t.Errorf("Credential(%q, %q, %v)", flag, name, required)
				}
				if tc.path == "" {
					return "", errors.New("no key")
				}
				return tc.path, nil
			}
			st, err := k.Open(tc.set, Input{Mode: SignRestart, Credential: cred})
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Open: %v, want error %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if st.LockID != "ID" || st.KeyPath != tc.path || built.KeyPath != tc.path || built.Mode != SignRestart {
				t.Fatalf("Open = %+v, Build got %+v; want the key %s in both", st, built, tc.path)
			}
		})
	}
}
