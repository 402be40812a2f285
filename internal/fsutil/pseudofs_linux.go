package fsutil

import (
	"os"

	"golang.org/x/sys/unix"
)

// Magic numbers of file systems that golang.org/x/sys/unix does not name
// (the kernel keeps them in the file system's own source).
const (
	configfsMagic  = 0x62656570 // fs/configfs/mount.c
	fusectlMagic   = 0x65735543 // fs/fuse/control.c (not fuse itself)
	mqueueMagic    = 0x19800202 // ipc/mqueue.c
	rpcPipefsMagic = 0x67596969 // net/sunrpc/rpc_pipe.c (RPCAUTH_GSSMAGIC)
)

// pseudoFS names, by statfs magic, the file systems whose files are not
// data on a disk: kernel state, control files and handles. Reading them
// can be endless (/proc/self/pagemap reads as 256 GiB, trace_pipe
// blocks), have side effects, or say nothing about code; their files are
// never read, whatever their type. tmpfs and ramfs are real file systems
// here (an install may live on one); devtmpfs reports tmpfs's magic, and
// what it holds are devices, refused by their type. FUSE is real too:
// virtiofs, sshfs and network file systems built on it report its magic.
var pseudoFS = map[uint32]string{
	unix.PROC_SUPER_MAGIC:      "procfs",
	unix.SYSFS_MAGIC:           "sysfs",
	unix.DEVPTS_SUPER_MAGIC:    "devpts",
	unix.DEBUGFS_MAGIC:         "debugfs",
	unix.TRACEFS_MAGIC:         "tracefs",
	unix.SECURITYFS_MAGIC:      "securityfs",
	unix.CGROUP_SUPER_MAGIC:    "cgroup",
	unix.CGROUP2_SUPER_MAGIC:   "cgroup2",
	unix.BPF_FS_MAGIC:          "bpf",
	configfsMagic:              "configfs",
	unix.PSTOREFS_MAGIC:        "pstore",
	unix.EFIVARFS_MAGIC:        "efivarfs",
	fusectlMagic:               "fusectl",
	unix.SELINUX_MAGIC:         "selinuxfs",
	unix.SMACK_MAGIC:           "smackfs",
	unix.AAFS_MAGIC:            "apparmorfs",
	unix.HUGETLBFS_MAGIC:       "hugetlbfs",
	mqueueMagic:                "mqueue",
	unix.AUTOFS_SUPER_MAGIC:    "autofs",
	unix.BINFMTFS_MAGIC:        "binfmt_misc",
	rpcPipefsMagic:             "rpc_pipefs",
	unix.RDTGROUP_SUPER_MAGIC:  "resctrl",
	unix.BINDERFS_SUPER_MAGIC:  "binderfs",
	unix.OPENPROM_SUPER_MAGIC:  "openpromfs",
	unix.USBDEVICE_SUPER_MAGIC: "usbfs",
	unix.XENFS_SUPER_MAGIC:     "xenfs",
	// Kernel-internal ones, reachable through /proc/PID/fd/N or
	// /proc/PID/ns/* links: an eventfd, for one, looks like a regular file
	// to stat.
	unix.NSFS_MAGIC:          "nsfs",
	unix.PID_FS_MAGIC:        "pidfs",
	unix.PIPEFS_MAGIC:        "pipefs",
	unix.SOCKFS_MAGIC:        "sockfs",
	unix.ANON_INODE_FS_MAGIC: "anon_inodefs",
	unix.BDEVFS_MAGIC:        "bdev",
	unix.DMA_BUF_MAGIC:       "dmabuf",
	unix.SECRETMEM_MAGIC:     "secretmem",
	unix.DEVMEM_MAGIC:        "devmem",
	unix.GUEST_MEMFD_MAGIC:   "guest_memfd",
}

// pseudoFSOf names the pseudo file system f is on ("" for a real one).
func pseudoFSOf(f *os.File) (string, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return "", err
	}
	var st unix.Statfs_t
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.Fstatfs(int(fd), &st)
	}); err != nil {
		return "", err
	}
	if serr != nil {
		return "", os.NewSyscallError("fstatfs", serr)
	}
	return pseudoFS[uint32(st.Type)], nil
}

// pseudoFSAt names the pseudo file system path (followed) is on, so that
// a symlink's target there is not even opened (opening some control
// files does something).
func pseudoFSAt(path string) (string, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return "", &os.PathError{Op: "statfs", Path: path, Err: err}
	}
	return pseudoFS[uint32(st.Type)], nil
}
