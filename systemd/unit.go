package systemd

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"
)

// Setting is one Key=Value line of a unit file, in its section.
type Setting struct {
	Section, Key, Value string
}

// Unit is a parsed unit file: its settings in file order. Repeated keys
// (LoadCredential=, ReadWritePaths=) appear once per line.
type Unit struct {
	Settings []Setting
}

// ParseFile reads the unit file at path.
func ParseFile(path string) (Unit, error) {
	f, err := os.Open(path)
	if err != nil {
		return Unit{}, err
	}
	defer f.Close()
	u, err := Parse(f)
	if err != nil {
		return Unit{}, fmt.Errorf("%s: %w", path, err)
	}
	return u, nil
}

// Parse reads a unit file as systemd does for the subset the shipped units
// use: [Section] headers, Key=Value lines, comments starting with # or ;,
// and lines continued with a trailing backslash. A setting outside a
// section or a line without '=' is an error.
func Parse(r io.Reader) (Unit, error) {
	var u Unit
	section := ""
	sc := bufio.NewScanner(r)
	n, pending := 0, ""
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if pending == "" && (line == "" || line[0] == '#' || line[0] == ';') {
			continue
		}
		if strings.HasSuffix(line, "\\") {
			pending += strings.TrimSuffix(line, "\\") + " "
			continue
		}
		line, pending = pending+line, ""
		if strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]") {
			section = line[1 : len(line)-1]
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok {
			return Unit{}, fmt.Errorf("line %d: %q is neither a section nor Key=Value", n, line)
		}
		if section == "" {
			return Unit{}, fmt.Errorf("line %d: %q outside a section", n, line)
		}
		u.Settings = append(u.Settings, Setting{Section: section, Key: strings.TrimSpace(key), Value: strings.TrimSpace(value)})
	}
	if err := sc.Err(); err != nil {
		return Unit{}, err
	}
	if pending != "" {
		return Unit{}, fmt.Errorf("line %d: continuation at the end of the file", n)
	}
	return u, nil
}

// Values returns every value of key in section, in file order.
func (u Unit) Values(section, key string) []string {
	var vs []string
	for _, s := range u.Settings {
		if s.Section == section && s.Key == key {
			vs = append(vs, s.Value)
		}
	}
	return vs
}

// Value returns the last value of key in section ("" when unset), the one
// systemd uses for a single-valued setting.
func (u Unit) Value(section, key string) string {
	vs := u.Values(section, key)
	if len(vs) == 0 {
		return ""
	}
	return vs[len(vs)-1]
}

// Command is a parsed `valguard run` command line.
type Command struct {
	Binary string
	// Flags maps a flag name (without dashes) to its values, in order.
	Flags map[string][]string
}

// RunCommand parses the unit's ExecStart= as `BINARY run --flag value ...`
// (or --flag=value). The shipped units use no quoting, so quotes are an
// error rather than something to interpret.
func (u Unit) RunCommand() (Command, error) {
	line := u.Value("Service", "ExecStart")
	if strings.ContainsAny(line, `"'`) {
		return Command{}, fmt.Errorf("ExecStart=%s: quoting is not supported here", line)
	}
	words := strings.Fields(line)
	if len(words) < 2 || words[1] != "run" {
		return Command{}, fmt.Errorf("ExecStart=%s: want BINARY run FLAGS", line)
	}
	c := Command{Binary: words[0], Flags: map[string][]string{}}
	for i := 2; i < len(words); i++ {
		w := words[i]
		if !strings.HasPrefix(w, "--") {
			return Command{}, fmt.Errorf("ExecStart=%s: %q is not a flag", line, w)
		}
		name, value, ok := strings.Cut(strings.TrimPrefix(w, "--"), "=")
		if !ok {
			if i+1 >= len(words) || strings.HasPrefix(words[i+1], "--") {
				return Command{}, fmt.Errorf("ExecStart=%s: --%s has no value", line, name)
			}
			i++
			value = words[i]
		}
		c.Flags[name] = append(c.Flags[name], value)
	}
	return c, nil
}
