package localnet

import (
	"bytes"
	"fmt"
	"os"
	"reflect"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// setting is one key of a CometBFT config.toml. Section "" is the top
// level (keys before the first table header). Value is a string, bool or
// int64.
type setting struct {
	Section string
	Key     string
	Value   any
}

// rewriteConfig sets every setting in the config.toml at path, keeping the
// file's comments and layout, and verifies the result by decoding it again.
// Every key must already be present exactly once in its section: CometBFT
// writes all of them, so a missing key means a format this package does not
// know, which is an error rather than a guess.
func rewriteConfig(path string, settings []setting) error {
	old, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	text, err := editTOML(string(old), settings)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, []byte(text), fi.Mode().Perm()); err != nil {
		return err
	}
	back, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := verifyTOML(back, settings); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// editTOML replaces the line of each setting with "key = value" and returns
// the new text. It is a line-level edit: table headers are "[name]" lines
// ("[[name]]" for an array of tables, whose keys are never edited), and a
// key's line starts with the key followed by "=".
func editTOML(text string, settings []setting) (string, error) {
	lines := strings.Split(text, "\n")
	found := make([]int, len(settings))
	section := ""
	for i, line := range lines {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "[") {
			if strings.HasPrefix(trimmed, "[[") {
				// An array of tables (CometBFT v1's
				// [[p2p.libp2p.scaler.overrides]]): no setting is
				// edited inside one, and its keys match none.
				end := strings.Index(trimmed, "]]")
				if end < 0 {
					return "", fmt.Errorf("line %d: malformed table header: %s", i+1, trimmed)
				}
				section = trimmed[:end+2]
				continue
			}
			end := strings.Index(trimmed, "]")
			if end < 0 {
				return "", fmt.Errorf("line %d: malformed table header: %s", i+1, trimmed)
			}
			section = strings.TrimSpace(trimmed[1:end])
			continue
		}
		key, _, ok := strings.Cut(trimmed, "=")
		if !ok || strings.HasPrefix(trimmed, "#") {
			continue
		}
		key = strings.TrimSpace(key)
		for j, s := range settings {
			if s.Section != section || s.Key != key {
				continue
			}
			v, err := formatValue(s.Value)
			if err != nil {
				return "", fmt.Errorf("[%s] %s: %w", s.Section, s.Key, err)
			}
			lines[i] = s.Key + " = " + v
			found[j]++
		}
	}
	for j, s := range settings {
		if found[j] != 1 {
			return "", fmt.Errorf("[%s] %s: found %d times, want exactly once", s.Section, s.Key, found[j])
		}
	}
	return strings.Join(lines, "\n"), nil
}

func formatValue(v any) (string, error) {
	switch v := v.(type) {
	case string:
		var b bytes.Buffer
		// toml's encoder quotes a string the way TOML requires.
		if err := toml.NewEncoder(&b).Encode(map[string]string{"v": v}); err != nil {
			return "", err
		}
		_, quoted, _ := strings.Cut(strings.TrimSpace(b.String()), "= ")
		return quoted, nil
	case bool:
		return strconv.FormatBool(v), nil
	case int64:
		return strconv.FormatInt(v, 10), nil
	default:
		return "", fmt.Errorf("unsupported value type %T", v)
	}
}

// verifyTOML decodes data and checks that every setting has its value.
func verifyTOML(data []byte, settings []setting) error {
	var doc map[string]any
	if err := toml.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("rewritten file does not parse: %w", err)
	}
	for _, s := range settings {
		table := doc
		if s.Section != "" {
			t, ok := doc[s.Section].(map[string]any)
			if !ok {
				return fmt.Errorf("section [%s] missing after rewrite", s.Section)
			}
			table = t
		}
		got, ok := table[s.Key]
		if !ok || !reflect.DeepEqual(got, s.Value) {
			return fmt.Errorf("[%s] %s = %v after rewrite, want %v", s.Section, s.Key, got, s.Value)
		}
	}
	return nil
}
