package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/integrityd/integrityd/internal/config"
)

// unitNet is what a systemd unit lets its service do on the network, as
// systemd reads the unit: RestrictAddressFamilies= and PrivateNetwork=.
type unitNet struct {
	unit string
	from string // where it was read: "systemctl show", or the files
	// families is RestrictAddressFamilies=: unset allows every family;
	// an allow list (allow) or a deny list of AF_ names otherwise.
	set, allow     bool
	families       []string
	privateNetwork bool
}

// allows reports whether the unit lets its service make a socket of
// family (AF_INET, AF_INET6).
func (u unitNet) allows(family string) bool {
	if !u.set {
		return true
	}
	return slices.Contains(u.families, family) == u.allow
}

// restrictFamilies applies one RestrictAddressFamilies= assignment as
// systemd does (config_parse_address_families): "" resets; the first
// assignment says whether the list allows ("AF_UNIX AF_INET") or denies
// ("~AF_PACKET"); a later one of the same sense adds to the list, one of
// the other sense takes its families off it; "none" allows none.
func (u *unitNet) restrictFamilies(v string) {
	v = strings.TrimSpace(v)
	if v == "" {
		u.set, u.allow, u.families = false, false, nil
		return
	}
	if v == "none" {
		u.set, u.allow, u.families = true, true, nil
		return
	}
	deny := strings.HasPrefix(v, "~")
	list := strings.Fields(strings.TrimPrefix(v, "~"))
	if !u.set {
		u.set, u.allow, u.families = true, !deny, nil
	}
	for _, f := range list {
		switch {
		case u.allow != deny && !slices.Contains(u.families, f):
			u.families = append(u.families, f)
		case u.allow == deny:
			u.families = slices.DeleteFunc(u.families, func(g string) bool { return g == f })
		}
	}
}

// unitForConfig names the packaged unit that runs the daemon on the
// configuration file path: integrityd.service for integrityd.conf,
// integrityd@NAME.service for NAME.conf (integrityd@.service reads
// /etc/integrityd/%i.conf). "" when no file is named.
func unitForConfig(path string) string {
	if path == "" {
		return ""
	}
	base := filepath.Base(path)
	if base == filepath.Base(config.DefaultPath) {
		return "integrityd.service"
	}
	name, ok := strings.CutSuffix(base, ".conf")
	if !ok || name == "" {
		return ""
	}
	return "integrityd@" + name + ".service"
}

// systemUnitPath is systemd's search path for system units, first wins
// (systemd.unit(5), "System Unit Search Path"; /lib/systemd/system for
// hosts without a merged /usr).
const systemUnitPath = "/etc/systemd/system.control:/run/systemd/system.control:/run/systemd/transient:" +
	"/etc/systemd/system:/run/systemd/system:" +
	"/usr/local/lib/systemd/system:/usr/lib/systemd/system:/lib/systemd/system"

// unitSearchPath is the unit search path: $SYSTEMD_UNIT_PATH when set
// (a trailing ':' appends the default one, as systemd reads it), else
// systemUnitPath.
func unitSearchPath(env string) []string {
	switch {
	case env == "":
		env = systemUnitPath
	case strings.HasSuffix(env, ":"):
		env += systemUnitPath
	}
	var dirs []string
	for d := range strings.SplitSeq(env, ":") {
		if d != "" {
			dirs = append(dirs, d)
		}
	}
	return dirs
}

// readUnitNet reads unit's network settings as systemd has them: from
// the running manager (systemctl show) on a host booted with systemd and
// no $SYSTEMD_UNIT_PATH, else from the unit file and its drop-ins on the
// search path. found is false when no such unit is installed (or it is
// masked).
func readUnitNet(ctx context.Context, unit string) (u unitNet, found bool, err error) {
	env := os.Getenv("SYSTEMD_UNIT_PATH")
	if fi, err := os.Stat("/run/systemd/system"); env == "" && err == nil && fi.IsDir() {
		if u, found, err := showUnitNet(ctx, unit); err == nil {
			return u, found, nil
		}
		// No answer from the manager (none in this namespace, no D-Bus
		// in a sandbox): read the files as it would.
	}
	return parseUnitNet(unitSearchPath(env), unit)
}

// warnUnitNet writes check-config's warning when TCP metrics on listen
// cannot work in the unit that runs the configuration file conf: told,
// not refused (a metrics endpoint that cannot start never stops the
// checks).
func warnUnitNet(ctx context.Context, stdout io.Writer, conf, listen string) {
	unit := unitForConfig(conf)
	if unit == "" || tcpFamilies(listen) == nil {
		return
	}
	u, found, err := readUnitNet(ctx, unit)
	switch {
	case err != nil:
		fmt.Fprintf(stdout, "WARNING:         cannot tell whether %s can serve TCP metrics: %v\n", unit, err)
	case found:
		if w := unitNetWarning(listen, u); w != "" {
			fmt.Fprintf(stdout, "WARNING:         %s\n", w)
		}
	}
}

// showUnitNet asks the running systemd for unit's settings.
func showUnitNet(ctx context.Context, unit string) (unitNet, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "systemctl", "show", "--property=LoadState,RestrictAddressFamilies,PrivateNetwork", "--", unit).Output()
	if err != nil {
		return unitNet{}, false, fmt.Errorf("systemctl show %s: %w", unit, err)
	}
	u := unitNet{unit: unit, from: "systemctl show " + unit}
	loaded := false
	for line := range strings.Lines(string(out)) {
		k, v, _ := strings.Cut(strings.TrimSpace(line), "=")
		switch k {
		case "LoadState":
			loaded = v == "loaded"
		case "RestrictAddressFamilies":
			u.restrictFamilies(v)
		case "PrivateNetwork":
			u.privateNetwork = v == "yes"
		}
	}
	return u, loaded, nil
}

// parseUnitNet reads unit (NAME.service or NAME@INSTANCE.service) from
// the first directory of dirs that has it (for an instance, its own file
// or else its template's), then its drop-ins as systemd does: every
// .conf in UNIT.d/ (and, for an instance, TEMPLATE.d/; and service.d/)
// of every directory, one per file name (the first directory's wins),
// applied in the order of their names.
func parseUnitNet(dirs []string, unit string) (unitNet, bool, error) {
	names := []string{unit}
	if prefix, rest, ok := strings.Cut(unit, "@"); ok {
		if _, suffix, ok := strings.Cut(rest, "."); ok {
			names = append(names, prefix+"@."+suffix)
		}
	}
	main, found := findUnitFile(dirs, names)
	if !found {
		return unitNet{}, false, nil
	}
	files := append([]string{main}, dropIns(dirs, slices.Concat(names, []string{"service"}))...)
	u := unitNet{unit: unit, from: strings.Join(files, ", ")}
	for i, f := range files {
		if err := u.readFile(f, i > 0); err != nil {
			return unitNet{}, false, err
		}
	}
	return u, true, nil
}

// findUnitFile is the first of names in the first directory of dirs that
// has it; not found when there is none or it is masked (a link to
// /dev/null).
func findUnitFile(dirs, names []string) (string, bool) {
	for _, name := range names {
		for _, d := range dirs {
			p := filepath.Join(d, name)
			if _, err := os.Stat(p); err != nil {
				continue
			}
			if t, err := filepath.EvalSymlinks(p); err == nil && t == os.DevNull {
				return "", false
			}
			return p, true
		}
	}
	return "", false
}

// dropIns are the .conf files of NAME.d/ for each of names in each
// directory of dirs, one per file name (the first directory's wins), in
// the order of their names.
func dropIns(dirs, names []string) []string {
	byName := map[string]string{}
	for _, d := range dirs {
		for _, n := range names {
			matches, _ := filepath.Glob(filepath.Join(d, n+".d", "*.conf"))
			for _, m := range matches {
				if _, ok := byName[filepath.Base(m)]; !ok {
					byName[filepath.Base(m)] = m
				}
			}
		}
	}
	var order []string
	for name := range byName {
		order = append(order, name)
	}
	slices.Sort(order)
	files := make([]string, len(order))
	for i, name := range order {
		files[i] = byName[name]
	}
	return files
}

// readFile applies the [Service] section's RestrictAddressFamilies= and
// PrivateNetwork= of one unit file or drop-in (comments, line
// continuations and other sections skipped).
func (u *unitNet) readFile(path string, dropin bool) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) && dropin {
		return nil // a dangling drop-in symlink: systemd skips it too
	}
	if err != nil {
		return fmt.Errorf("read unit file %s: %w", path, err)
	}
	defer f.Close()
	section, line := "", ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := sc.Text()
		if cont, ok := strings.CutSuffix(l, "\\"); ok {
			line += cont + " "
			continue
		}
		line += l
		l, line = strings.TrimSpace(line), ""
		switch {
		case l == "" || l[0] == '#' || l[0] == ';':
		case l[0] == '[':
			section = l
		case section == "[Service]":
			k, v, _ := strings.Cut(l, "=")
			switch strings.TrimSpace(k) {
			case "RestrictAddressFamilies":
				u.restrictFamilies(v)
			case "PrivateNetwork":
				u.privateNetwork = parseBool(strings.TrimSpace(v))
			}
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read unit file %s: %w", path, err)
	}
	return nil
}

// parseBool reads a systemd boolean ("" is the default, false).
func parseBool(v string) bool {
	switch strings.ToLower(v) {
	case "1", "yes", "y", "true", "t", "on":
		return true
	}
	return false
}

// tcpFamilies are the address families a listener on host:port needs:
// one of them.
func tcpFamilies(listen string) []string {
	if listen == "" || strings.HasPrefix(listen, "unix:") {
		return nil
	}
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil {
		if ip.To4() != nil {
			return []string{"AF_INET"}
		}
		return []string{"AF_INET6"}
	}
	return []string{"AF_INET", "AF_INET6"} // a name or all addresses: either will do
}

// unitNetWarning says why TCP metrics on listen cannot work in unit u,
// or "".
func unitNetWarning(listen string, u unitNet) string {
	fams := tcpFamilies(listen)
	if fams == nil {
		return ""
	}
	var why []string
	if !slices.ContainsFunc(fams, u.allows) {
		why = append(why, fmt.Sprintf("RestrictAddressFamilies= allows no %s socket (the endpoint cannot start: an error entry and a retry, the checks go on)", strings.Join(fams, " or ")))
	}
	if u.privateNetwork {
		why = append(why, "PrivateNetwork=yes (a listener there is reachable from nowhere else)")
	}
	if len(why) == 0 {
		return ""
	}
	inst, sock := "", "/run/integrityd/metrics.sock"
	if _, name, ok := strings.Cut(strings.TrimSuffix(u.unit, ".service"), "@"); ok {
		inst, sock = " --instance "+name, "/run/integrityd/"+name+"/metrics.sock"
	}
	return fmt.Sprintf("metrics_listen %s is TCP, but in unit %s (%s) %s. Install the metrics-tcp drop-in (packaging/install.sh%s --metrics-tcp, or drop-ins/metrics-tcp.conf in /etc/systemd/system/%s.d/), then systemctl daemon-reload and systemctl restart %s; or set metrics_listen = unix:%s",
		listen, u.unit, u.from, strings.Join(why, "; "), inst, u.unit, strings.TrimSuffix(u.unit, ".service"), sock)
}
