package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// serviceUser is the user the packaged unit runs the daemon as
// (User=integrityd).
const serviceUser = "integrityd"

// dirCheck is what check-config finds out about a directory the daemon
// must write in.
type dirCheck struct {
	note string // what was checked, for the listing
	// service says the service's user may not write there, when that
	// could be checked ("" otherwise).
	service string
}

// checkWritableDir checks that the daemon can write in dir: it exists and
// is a directory, or its nearest existing parent is one that is writable
// (the daemon creates it); it is not on a read-only file system; the
// current uid may write there (access(2)). Run as root, access(2) allows
// nearly everything, so the mode bits are also checked for user
// integrityd (with its groups from the group database) when that user
// exists.
//
// What cannot be checked from outside the unit: what its sandbox makes
// read-only (ProtectSystem=strict without ReadWritePaths=), ACLs,
// SupplementaryGroups=, a DynamicUser= uid, and what systemd changes at
// start (StateDirectory= creates the state directory and gives it to the
// service's user).
func checkWritableDir(dir string) (dirCheck, error) {
	d := dir
	var fi fs.FileInfo
	for {
		var err error
		fi, err = os.Stat(d)
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
			return dirCheck{}, err
		}
		parent := filepath.Dir(d)
		if parent == d {
			return dirCheck{}, err
		}
		d = parent
	}
	if !fi.IsDir() {
		return dirCheck{}, fmt.Errorf("%s is not a directory", d)
	}
	if err := unix.Access(d, unix.W_OK|unix.X_OK); err != nil {
		if errors.Is(err, unix.EROFS) {
			return dirCheck{}, fmt.Errorf("%s is on a read-only file system", d)
		}
		return dirCheck{}, fmt.Errorf("%s is not writable by uid %d: %v", d, os.Geteuid(), err)
	}
	c := dirCheck{note: "writable"}
	if d != dir {
		c.note = fmt.Sprintf("does not exist yet; %s is writable, so it can be created", d)
	}
	if os.Geteuid() != 0 {
		c.note += fmt.Sprintf(" by uid %d", os.Geteuid())
		return c, nil
	}
	u, err := user.Lookup(serviceUser)
	if err != nil {
		c.note += " by root (no user " + serviceUser + " to check for)"
		return c, nil
	}
	if ok, why := writableBy(fi, u); !ok {
		c.service = fmt.Sprintf("%s is not writable by user %s: %s", d, serviceUser, why)
		return c, nil
	}
	c.note += " by user " + serviceUser
	return c, nil
}

// writableBy reports, from its owner and mode, whether u may create files
// in directory fi, and why not.
func writableBy(fi fs.FileInfo, u *user.User) (bool, string) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return true, ""
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gids, _ := u.GroupIds()
	if !slices.Contains(gids, u.Gid) {
		gids = append(gids, u.Gid)
	}
	perm := fi.Mode().Perm()
	why := fmt.Sprintf("owner %d:%d, mode %04o", st.Uid, st.Gid, perm)
	switch {
	case uint64(st.Uid) == uid:
		return perm&0o300 == 0o300, why
	case slices.Contains(gids, strconv.FormatUint(uint64(st.Gid), 10)):
		return perm&0o030 == 0o030, why
	}
	return perm&0o003 == 0o003, why
}
