package chain

import (
	"errors"
	"fmt"
	"os"
	"slices"

	"github.com/valguard/valguard/internal/secretfile"
	"github.com/valguard/valguard/internal/setting"
)

// commonSettings maps the config fields every adapter has to the flags
// every kind reads (Settings: node-home, node-binary, node-args,
// validator-key, max-block-age); a kind maps the settings of its own
// flags (Kind.SettingFlags).
var commonSettings = map[string]string{
	"Home": "node-home", "Binary": "node-binary", "Args": "node-args",
	"ValidatorKey": "validator-key", "MaxBlockAge": "max-block-age",
}

// FlagError puts the flag's name before an adapter's error about one of
// its settings (a setting.Error of a field in the kind's SettingFlags or
// one every adapter has): "--node-home: ...". The adapters name no flags
// themselves. Other errors, and nil, are returned as they are.
func (k Kind) FlagError(err error) error {
	var se *setting.Error
	if errors.As(err, &se) {
		f, ok := k.SettingFlags[se.Name]
		if !ok {
			f, ok = commonSettings[se.Name]
		}
		if ok {
			return fmt.Errorf("--%s: %w", f, err)
		}
	}
	return err
}

// Open builds the node (Build) with the validator key of the settings:
// the file validator-key names, else the kind's key credential (both
// through in.Credential), refused when others can read it
// (secretfile.CheckPrivate). The Setup's KeyPath is that file. An
// adapter's error about one of its settings names the flag (FlagError).
func (k Kind) Open(s Settings, in Input) (Setup, error) {
	keyPath, err := in.Credential("validator-key", k.KeyCredential, true)
	if err != nil {
		return Setup{}, err
	}
	if err := secretfile.CheckPrivate(keyPath, "validator-key"); err != nil {
		return Setup{}, err
	}
	in.KeyPath = keyPath
	st, err := k.Build(s, in)
	st.KeyPath = keyPath
	return st, k.FlagError(err)
}

// ErrNoKey: KeyID found no validator key file.
var ErrNoKey = errors.New("no validator key")

// keyCredentials are the validator keys' systemd credential names of the
// registered kinds, each once, in the order of Names.
func keyCredentials() []string {
	var out []string
	for _, n := range Names() {
		if c := kinds[n].KeyCredential; c != "" && !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out
}

// KeyID is the lock id of the validator key file at path, else (path
// "") at the first of the registered kinds' key credentials that exists
// (credential as in Input.Credential, not required; in the order of
// Names); ErrNoKey without either. The first kind, in the order of Names,
// whose KeyID says the file is its key derives the id; when none does,
// the kind named fallback (the default --node) does, and its error says
// what is wrong with the file. Errors name the flag validator-key where
// they are about the file (FlagError).
func KeyID(path string, credential func(flag, name string, required bool) (string, error), fallback string) (string, error) {
	if path == "" {
		for _, name := range keyCredentials() {
			if path, _ = credential("validator-key", name, false); path != "" {
				break
			}
		}
	}
	if path == "" {
		return "", ErrNoKey
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("--validator-key: %w", err)
	}
	for _, n := range Names() {
		k := kinds[n]
		if n == fallback || k.KeyID == nil {
			continue
		}
		if id, ok, err := k.KeyID(path, data); ok {
			return id, k.FlagError(err)
		}
	}
	k, found := kinds[fallback]
	if !found || k.KeyID == nil {
		return "", fmt.Errorf("--validator-key %s: no node type %q to read it", path, fallback)
	}
	id, _, err := k.KeyID(path, data)
	return id, k.FlagError(err)
}
