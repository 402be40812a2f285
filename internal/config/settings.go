package config

import (
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"
)

// Settings is every setting of every command. A command gets it whole
// from Flags.Settings, merged and validated.
type Settings struct {
	ConfigFile      string // the configuration file read ("" if none)
	Root            string
	AppsPaths       []string
	DataDir         string
	Exclude         []string
	Trust           string
	CRL             string // "none" to skip
	Enforce         string // "auto", "yes" or "no"
	Output          string
	Workers         int // 0: four per CPU
	StateDir        string
	RescanInterval  time.Duration
	ReverifyPeriod  time.Duration
	LogFormat       string // "auto", "journal", "json" or "console"
	MetricsListen   string
	MetricsTextfile string
	ControlSocket   string // "" for the default ($RUNTIME_DIRECTORY/control.sock), "none" for none
	WhoData         string // "on" or "off"
	// Unsigned says whether code no signature covers is checked against
	// the baseline in the state directory: "auto" (when a baseline
	// exists), "on" (an empty baseline until one is recorded: every file
	// is UNSIGNED_EXTRA) or "off".
	Unsigned string

	// from says where each setting not at its default came from, by flag
	// name.
	from map[string]source
}

// source is where a setting's value came from: a line of a file, or its
// flag (file "").
type source struct {
	file string
	line int
}

// setting is one setting: its flag, its key in the configuration file and
// its field.
type setting struct {
	flag  string
	key   string // "" if the file cannot set it
	abs   bool   // in the file, it must be an absolute path
	usage string
	field func(*Settings) any // *string, *[]string, *int or *time.Duration
}

// settings is every setting. It is never changed; the file's keys, the
// flags and the merge are all read from it.
var settings = [...]setting{
	{"config", "", false, "configuration file (default " + DefaultPath + " if it exists); flags override it", func(s *Settings) any { return &s.ConfigFile }},
	{"root", "root", true, "Nextcloud server root (where version.php is)", func(s *Settings) any { return &s.Root }},
	{"apps-path", "apps_path", true, "apps directory (repeatable; default: apps_paths of config/config.php, else ROOT/apps)", func(s *Settings) any { return &s.AppsPaths }},
	{"data-dir", "data_dir", true, "custom data directory to exclude (default: datadirectory of config/config.php)", func(s *Settings) any { return &s.DataDir }},
	{"trust", "trust", true, "PEM trust anchors (default: Nextcloud's root.crt built into integrityd; the install's own resources/codesigning/root.crt is only compared with it)", func(s *Settings) any { return &s.Trust }},
	{"crl", "crl", true, `CRL signed by a trust anchor (default: Nextcloud's root.crl built into integrityd; with --trust, ROOT/resources/codesigning/root.crl if present; "none" to skip)`, func(s *Settings) any { return &s.CRL }},
	{"exclude", "exclude", false, "path not checked at all (repeatable; this weakens the check)", func(s *Settings) any { return &s.Exclude }},
	{"output", "", false, "output format", func(s *Settings) any { return &s.Output }},
	{"enforce", "enforce", false, `check even where Nextcloud would not: "auto" (follow $OC_Channel in version.php and integrity.check.disabled), "yes" or "no"`, func(s *Settings) any { return &s.Enforce }},
	{"workers", "", false, "files hashed in parallel (default: four per CPU)", func(s *Settings) any { return &s.Workers }},
	{"state-dir", "state_dir", true, "the daemon's state directory, where findings and scan metadata persist", func(s *Settings) any { return &s.StateDir }},
	{"rescan-interval", "rescan_interval", false, "full rescan interval when --reverify-period is 0", func(s *Settings) any { return &s.RescanInterval }},
	{"reverify-period", "reverify_period", false, "every file is hashed again in the background within this period, paced (0: off)", func(s *Settings) any { return &s.ReverifyPeriod }},
	{"log-format", "log_format", false, `"journal", "json", "console", or "auto" (journal when stderr is the journal, console on a terminal, else json)`, func(s *Settings) any { return &s.LogFormat }},
	{"metrics-listen", "metrics_listen", false, "serve Prometheus metrics on this address (host:port, or unix:/path)", func(s *Settings) any { return &s.MetricsListen }},
	{"metrics-textfile", "metrics_textfile", true, "write Prometheus metrics to this file for node_exporter's textfile collector", func(s *Settings) any { return &s.MetricsTextfile }},
	{"who-data", "who_data", false, `"on": name the process that made each alerted change (fanotify; needs CAP_SYS_ADMIN, see packaging/systemd/drop-ins/who-data.conf; without it one warning, and alerts say the writer is unknown), or "off"`, func(s *Settings) any { return &s.WhoData }},
	{"control-socket", "control_socket", true, `unix socket on which the daemon takes "rescan" from operators (mode 0660; default $RUNTIME_DIRECTORY/control.sock when systemd sets RUNTIME_DIRECTORY; "none" for none)`, func(s *Settings) any { return &s.ControlSocket }},
	{"unsigned", "unsigned", false, `check code no signature covers (unsigned apps, themes/, PHP outside the scopes, the .htaccess below the marker) against the baseline in the state directory: "auto" (when integrityd baseline recorded one), "on" or "off"`, func(s *Settings) any { return &s.Unsigned }},
}

// Keys are the configuration file's keys, in the order of the settings.
func Keys() []string {
	var keys []string
	for _, s := range settings {
		if s.key != "" {
			keys = append(keys, s.key)
		}
	}
	return keys
}

func byFlag(name string) (setting, bool) {
	for _, s := range settings {
		if s.flag == name {
			return s, true
		}
	}
	return setting{}, false
}

func byKey(key string) (setting, bool) {
	for _, s := range settings {
		if key != "" && s.key == key {
			return s, true
		}
	}
	return setting{}, false
}

// Command is what one command takes: the flags of its settings and what
// it requires of them.
type Command struct {
	Flags    []string // the settings it takes, by flag name
	Output   string   // the default of --output
	Outputs  []string // the values --output takes (when it takes --output)
	NeedRoot bool     // it checks an install: root is required and must be a directory
}

// Defaults are the settings before the configuration file and the flags.
func (c Command) Defaults() Settings {
	return Settings{
		Enforce:        "auto",
		Output:         c.Output,
		StateDir:       "/var/lib/integrityd",
		RescanInterval: time.Hour,
		ReverifyPeriod: 10 * time.Minute,
		LogFormat:      "auto",
		WhoData:        "on",
		Unsigned:       "auto",
	}
}

// Flags are a command's flags, registered on its flag set; after the set
// is parsed, Settings merges them with the defaults and the file.
type Flags struct {
	cmd         Command
	fs          *flag.FlagSet
	v           Settings // what the flags wrote, over the defaults
	defaultPath string   // the file read when --config is not given
}

// Bind registers the command's flags on fs.
func (c Command) Bind(fs *flag.FlagSet) *Flags {
	f := &Flags{cmd: c, fs: fs, v: c.Defaults(), defaultPath: DefaultPath}
	for _, name := range c.Flags {
		st, ok := byFlag(name)
		if !ok {
			panic("config: no setting has the flag --" + name)
		}
		usage := st.usage
		if name == "output" {
			usage = "output format: " + strings.Join(c.Outputs, ", ")
		}
		switch p := st.field(&f.v).(type) {
		case *string:
			fs.StringVar(p, name, *p, usage)
		case *[]string:
			fs.Var((*list)(p), name, usage)
		case *int:
			fs.IntVar(p, name, *p, usage)
		case *time.Duration:
			fs.DurationVar(p, name, *p, usage)
		}
	}
	return f
}

// list is a repeatable flag.
type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

// Settings returns the command's settings, once its flag set is parsed:
// the defaults, then the configuration file (--config, or DefaultPath when
// it exists), then only the flags the user set; validated.
func (f *Flags) Settings() (*Settings, error) {
	file, err := f.file()
	if err != nil {
		return nil, err
	}
	if file != nil {
		// The file is strict: its bad values are refused even where a
		// flag overrides them (the same rules, on the file alone).
		var none Command
		if err := merge(none.Defaults(), file, nil, nil).validate(none); err != nil {
			return nil, err
		}
	}
	var set []string
	f.fs.Visit(func(fl *flag.Flag) { set = append(set, fl.Name) })
	s := merge(f.cmd.Defaults(), file, &f.v, set)
	if err := s.validate(f.cmd); err != nil {
		return nil, err
	}
	return s, nil
}

// file reads the configuration file, if there is one.
func (f *Flags) file() (*Config, error) {
	path := f.v.ConfigFile
	if path == "" {
		if _, err := os.Stat(f.defaultPath); err != nil {
			return nil, nil
		}
		path = f.defaultPath
	}
	return Load(path)
}

// merge is the one place settings are merged: def, then what the file
// set (file may be nil), then the flags named in set, read from flags.
func merge(def Settings, file *Config, flags *Settings, set []string) *Settings {
	s := def
	s.from = map[string]source{}
	if file != nil {
		s.ConfigFile = file.ConfigFile
		for _, st := range settings {
			if st.key != "" && file.Set[st.key] {
				assign(st.field(&s), st.field(&file.Settings))
				s.from[st.flag] = source{file.ConfigFile, file.Line[st.key]}
			}
		}
	}
	for _, name := range set {
		if st, ok := byFlag(name); ok {
			assign(st.field(&s), st.field(flags))
			s.from[name] = source{}
		}
	}
	return &s
}

// assign copies the field src points to into dst; a list is replaced, not
// extended (flags that set a list replace the file's).
func assign(dst, src any) {
	switch d := dst.(type) {
	case *string:
		*d = *src.(*string)
	case *[]string:
		*d = slices.Clone(*src.(*[]string))
	case *int:
		*d = *src.(*int)
	case *time.Duration:
		*d = *src.(*time.Duration)
	}
}

// FlagError is a flag's bad value, or a required setting missing: a
// mistake in the command line.
type FlagError struct{ Msg string }

func (e *FlagError) Error() string { return e.Msg }

// validate checks the merged settings, all of them (a bad value in the
// file is refused even by a command that does not use it), then what c
// requires.
func (s *Settings) validate(c Command) error {
	if c.Outputs != nil && !slices.Contains(c.Outputs, s.Output) {
		return &FlagError{fmt.Sprintf("unknown --output %q (want one of %s)", s.Output, strings.Join(c.Outputs, ", "))}
	}
	if !slices.Contains([]string{"auto", "yes", "no"}, s.Enforce) {
		return s.invalid("enforce", `%q, want "auto", "yes" or "no"`, s.Enforce)
	}
	if !slices.Contains([]string{"on", "off"}, s.WhoData) {
		return s.invalid("who-data", `%q, want "on" or "off"`, s.WhoData)
	}
	if !slices.Contains([]string{"auto", "journal", "json", "console"}, s.LogFormat) {
		return s.invalid("log-format", `%q, want "auto", "journal", "json" or "console"`, s.LogFormat)
	}
	if !slices.Contains([]string{"auto", "on", "off"}, s.Unsigned) {
		return s.invalid("unsigned", `%q, want "auto", "on" or "off"`, s.Unsigned)
	}
	if s.RescanInterval <= 0 {
		return s.invalid("rescan-interval", "%q is not a positive duration (like 30m or 1h)", s.RescanInterval.String())
	}
	if s.ReverifyPeriod < 0 || (s.ReverifyPeriod > 0 && s.ReverifyPeriod < time.Second) {
		return s.invalid("reverify-period", "%q: want 0 (off) or a duration of at least 1s (like 10m)", s.ReverifyPeriod.String())
	}
	if !c.NeedRoot {
		return nil
	}
	if s.Root == "" {
		return &FlagError{"--root is required (or root = in the configuration file)"}
	}
	if fi, err := os.Stat(s.Root); err != nil || !fi.IsDir() {
		if src := s.from["root"]; src.file != "" {
			return &Error{src.file, src.line, fmt.Sprintf("root: %s is not a directory", s.Root)}
		}
		return fmt.Errorf("server root %s: not a directory", s.Root)
	}
	return nil
}

// invalid is the error for the setting of flag name: at its line when the
// file set it, else a FlagError naming the flag.
func (s *Settings) invalid(name, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if src := s.from[name]; src.file != "" {
		st, _ := byFlag(name)
		return &Error{src.file, src.line, st.key + ": " + msg}
	}
	return &FlagError{"--" + name + ": " + msg}
}
