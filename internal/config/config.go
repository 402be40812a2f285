// Package config reads integrityd's configuration file: "key = value"
// lines, "#" comments, strict (an unknown key, a bad value or a repeated
// single key is an error that names the file and the line).
//
// Keys: root, apps_path (repeatable), data_dir, trust, crl, state_dir,
// rescan_interval, exclude (repeatable: paths under the server root that
// are not checked at all, which weakens the check), enforce, log_format,
// metrics_listen, metrics_textfile.
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

// Config is the file's content; zero values mean "not set".
type Config struct {
	Root            string
	AppsPaths       []string
	DataDir         string
	Trust           string
	CRL             string
	StateDir        string
	RescanInterval  time.Duration
	Exclude         []string
	Enforce         string
	LogFormat       string
	MetricsListen   string
	MetricsTextfile string
	// Set lists the keys the file set.
	Set map[string]bool
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

// Parse reads a configuration; name is used in errors.
func Parse(data []byte, name string) (*Config, error) {
	c := &Config{Set: map[string]bool{}}
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
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read configuration %s: %w", name, err)
	}
	return c, nil
}

func (c *Config) set(key, value string) error {
	single := map[string]*string{
		"root": &c.Root, "data_dir": &c.DataDir, "trust": &c.Trust, "crl": &c.CRL, "state_dir": &c.StateDir,
		"enforce": &c.Enforce, "log_format": &c.LogFormat, "metrics_listen": &c.MetricsListen, "metrics_textfile": &c.MetricsTextfile,
	}
	switch key {
	case "apps_path":
		c.AppsPaths = append(c.AppsPaths, value)
	case "exclude":
		c.Exclude = append(c.Exclude, value)
	case "rescan_interval":
		if c.Set[key] {
			return fmt.Errorf("%s set twice", key)
		}
		d, err := time.ParseDuration(value)
		if err != nil || d <= 0 {
			return fmt.Errorf("rescan_interval: %q is not a positive duration (like 30m or 1h)", value)
		}
		c.RescanInterval = d
	default:
		p, ok := single[key]
		if !ok {
			return fmt.Errorf("unknown key %q", key)
		}
		if c.Set[key] {
			return fmt.Errorf("%s set twice", key)
		}
		*p = value
	}
	switch key {
	case "enforce":
		if value != "auto" && value != "yes" && value != "no" {
			return fmt.Errorf(`enforce: %q, want "auto", "yes" or "no"`, value)
		}
	case "log_format":
		if value != "auto" && value != "journal" && value != "json" && value != "console" {
			return fmt.Errorf(`log_format: %q, want "auto", "journal", "json" or "console"`, value)
		}
	case "root", "data_dir", "trust", "crl", "state_dir", "apps_path", "metrics_textfile":
		if !strings.HasPrefix(value, "/") && !(key == "crl" && value == "none") {
			return fmt.Errorf("%s: %q is not an absolute path", key, value)
		}
	}
	c.Set[key] = true
	return nil
}
