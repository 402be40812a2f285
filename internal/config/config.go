// Package config is integrityd's settings: one Settings value per command,
// built in one order (defaults, then the configuration file, then the
// flags the user set) and validated once, on the merged value.
//
// The configuration file is "key = value" lines and "#" comments, strict:
// an unknown key, a malformed line, a relative path or a repeated single
// key is an error that names the file and the line, and so is a bad value
// (found when the settings are validated).
//
// Keys (the settings table of settings.go): root, apps_path (repeatable),
// data_dir, trust, crl, exclude (repeatable: paths under the server root
// that are not checked at all, which weakens the check), enforce,
// state_dir, rescan_interval, reverify_period, log_format, metrics_listen,
// metrics_textfile, who_data, control_socket, unsigned.
package config

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// DefaultPath is read when it exists and no other file is named.
const DefaultPath = "/etc/integrityd/integrityd.conf"

// Config is the file's content: the settings it sets (zero values mean
// "not set"; ConfigFile is the name of the file).
type Config struct {
	Settings
	// Set lists the keys the file set; Line says on which line (the
	// first, for a repeatable key).
	Set  map[string]bool
	Line map[string]int
}

// Error is a problem at a line of a configuration file.
type Error struct {
	File string
	Line int
	Msg  string
}

func (e *Error) Error() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg) }

// Load reads the file at path.
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read configuration: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, 1<<20+1))
	if err != nil {
		return nil, fmt.Errorf("read configuration %s: %w", path, err)
	}
	if len(data) > 1<<20 {
		return nil, fmt.Errorf("read configuration %s: larger than 1 MiB", path)
	}
	return Parse(data, path)
}

// Parse reads a configuration; name is used in errors. Values are only
// parsed here; Flags.Settings validates them once merged with the flags.
func Parse(data []byte, name string) (*Config, error) {
	c := &Config{Settings: Settings{ConfigFile: name}, Set: map[string]bool{}, Line: map[string]int{}}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok {
			return nil, &Error{name, n, fmt.Sprintf("want \"key = value\", got %q", line)}
		}
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		if len(value) >= 2 && value[0] == '"' && value[len(value)-1] == '"' {
			value = value[1 : len(value)-1]
		}
		if value == "" {
			return nil, &Error{name, n, fmt.Sprintf("%s: empty value", key)}
		}
		if err := c.set(key, value); err != nil {
			return nil, &Error{name, n, err.Error()}
		}
		if !c.Set[key] {
			c.Set[key], c.Line[key] = true, n
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read configuration %s: %w", name, err)
	}
	return c, nil
}

// set parses one line's value into its setting.
func (c *Config) set(key, value string) error {
	st, ok := byKey(key)
	if !ok {
		return fmt.Errorf("unknown key %q", key)
	}
	if st.abs && !strings.HasPrefix(value, "/") && !((key == "crl" || key == "control_socket") && value == "none") {
		return fmt.Errorf("%s: %q is not an absolute path", key, value)
	}
	switch p := st.field(&c.Settings).(type) {
	case *[]string:
		*p = append(*p, value)
		return nil
	case *string:
		if c.Set[key] {
			return fmt.Errorf("%s set twice", key)
		}
		*p = value
	case *time.Duration:
		if c.Set[key] {
			return fmt.Errorf("%s set twice", key)
		}
		d, err := time.ParseDuration(value)
		if err != nil {
			return fmt.Errorf("%s: %q is not a positive duration (like 30m or 1h)", key, value)
		}
		*p = d
	default:
		panic(fmt.Sprintf("config: setting %s has a field of type %T", key, p))
	}
	return nil
}
