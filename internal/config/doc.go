package config

import (
	"fmt"
	"strings"
	"time"
)

// KeyDoc documents one key of the configuration file, as the settings
// table defines it: what integrityd.conf(5) is generated from.
type KeyDoc struct {
	Key, Flag string
	Usage     string
	Path      bool   // the value must be an absolute path
	Repeat    bool   // the key may be given more than once
	Default   string // "" when there is none
}

// Docs lists the configuration file's keys, in the order of the
// settings table.
func Docs() []KeyDoc {
	def := Command{}.Defaults()
	var docs []KeyDoc
	for _, st := range settings {
		if st.key == "" {
			continue
		}
		d := KeyDoc{Key: st.key, Flag: st.flag, Usage: st.usage, Path: st.abs}
		switch p := st.field(&def).(type) {
		case *string:
			d.Default = *p
		case *[]string:
			d.Repeat = true
		case *time.Duration:
			d.Default = shortDuration(*p)
		case *int:
			if *p != 0 {
				d.Default = fmt.Sprint(*p)
			}
		}
		docs = append(docs, d)
	}
	return docs
}

// shortDuration is d as Go parses it, without zero minutes and seconds:
// 1h, 10m, 1h30m.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
