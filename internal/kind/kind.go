// Package kind is the one table of integrityd's alert kinds (INVALID_HASH,
// FILE_MISSING, ...) and its journald MESSAGE_IDs: for each kind, its place
// in report order, the MESSAGE_ID of its alerts, the priority they are
// logged at and whether their MESSAGE carries the finding's message. The
// kind's name is what reports, the journal's INTEGRITY_KIND field and the
// metrics' "kind" label say.
package kind

// Kind is the kind of a finding, as Nextcloud names it (HARD_LINK,
// DUPLICATE_APP and VERSION_DOWNGRADE are integrityd's own, and so are the
// kinds of the unsigned coverage).
type Kind string

const (
	InvalidHash Kind = "INVALID_HASH"
	FileMissing Kind = "FILE_MISSING"
	ExtraFile   Kind = "EXTRA_FILE"
	// HardLink is a file of the scope, with the right content, that has
	// more than one name: a write through another name (in the data
	// directory, say) changes it without an event on the install.
	HardLink Kind = "HARD_LINK"
	// DuplicateApp is an app id found in several apps roots: Nextcloud
	// loads the copy with the highest version (and checks only that one),
	// so a copy added to an apps root can shadow a signed app. Reported on
	// the appinfo/info.xml of every copy that is checked.
	DuplicateApp Kind = "DUPLICATE_APP"
	// VersionDowngrade is a scope whose manifest verifies and whose
	// files match it, but whose release is older than one the daemon
	// verified there before: an older signed release (with its known
	// holes) put in place of a newer one, which Nextcloud's check accepts
	// and Nextcloud runs for apps. Reported on the scope's VersionFile.
	VersionDowngrade Kind = "VERSION_DOWNGRADE"
	Exception        Kind = "EXCEPTION"
)

// Kinds of the unsigned coverage (integrityd's own, never in a Nextcloud
// report of a signed scope).
const (
	// UnsignedChanged is a covered file whose content or mode differs
	// from the baseline.
	UnsignedChanged Kind = "UNSIGNED_CHANGED"
	// UnsignedExtra is a covered file the baseline does not have.
	UnsignedExtra Kind = "UNSIGNED_EXTRA"
	// UnsignedMissing is a file of the baseline that is gone.
	UnsignedMissing Kind = "UNSIGNED_MISSING"
	// HtaccessDirective is the root .htaccess, changed since the baseline,
	// with directives below the marker that Nextcloud's installer does not
	// write (php_value, AddHandler, ...): one finding naming each
	// directive and its line.
	HtaccessDirective Kind = "HTACCESS_DIRECTIVE"
)

// Priority is a syslog priority, as journald's PRIORITY field has it.
type Priority int

const (
	Err     Priority = 3
	Warning Priority = 4
)

// row is what integrityd says of one kind.
type row struct {
	kind Kind
	id   string // MESSAGE_ID of its alerts
	// priority of its alerts. The daemon also logs at Err an EXCEPTION of
	// a whole scope (no path) and an UNSIGNED_EXTRA whose name is
	// executable (the web shell).
	priority Priority
	unsigned bool // a kind of the unsigned coverage, not of a signed scope
	// inLine: the alert's MESSAGE carries the finding's message (an
	// EXCEPTION's reason, an HTACCESS_DIRECTIVE's directives and lines, a
	// VERSION_DOWNGRADE's releases).
	inLine bool
}

// table is every kind, in report order.
func table() [11]row {
	return [...]row{
		{kind: InvalidHash, id: IDInvalidHash, priority: Warning},
		{kind: FileMissing, id: IDFileMissing, priority: Warning},
		{kind: ExtraFile, id: IDExtraFile, priority: Warning},
		{kind: HardLink, id: IDHardLink, priority: Warning},
		{kind: DuplicateApp, id: IDDuplicate, priority: Warning},
		{kind: VersionDowngrade, id: IDDowngrade, priority: Warning, inLine: true},
		{kind: Exception, id: IDException, priority: Warning, inLine: true},
		{kind: HtaccessDirective, id: IDHtaccessDirective, priority: Err, unsigned: true, inLine: true},
		{kind: UnsignedChanged, id: IDUnsignedChanged, priority: Warning, unsigned: true},
		{kind: UnsignedExtra, id: IDUnsignedExtra, priority: Warning, unsigned: true},
		{kind: UnsignedMissing, id: IDUnsignedMissing, priority: Warning, unsigned: true},
	}
}

// lookup is k's row and its place in report order; a kind not in the
// table sorts first and alerts as an EXCEPTION, at Warning, with no
// message in its line.
func lookup(k Kind) (row, int) {
	for i, r := range table() {
		if r.kind == k {
			return r, i
		}
	}
	return row{kind: k, id: IDException, priority: Warning}, 0
}

// All returns every kind, in report order.
func All() []Kind {
	t := table()
	out := make([]Kind, len(t))
	for i, r := range t {
		out[i] = r.kind
	}
	return out
}

// Order is k's place in report order (0 for INVALID_HASH, and for a kind
// not in the table).
func (k Kind) Order() int {
	_, i := lookup(k)
	return i
}

// MessageID is the MESSAGE_ID of an alert of kind k; IDException for a
// kind not in the table.
func (k Kind) MessageID() string {
	r, _ := lookup(k)
	return r.id
}

// Priority is the priority an alert of kind k is logged at; the daemon
// raises an EXCEPTION of a whole scope and an UNSIGNED_EXTRA of an
// executable file to Err.
func (k Kind) Priority() Priority {
	r, _ := lookup(k)
	return r.priority
}

// InLine reports whether the MESSAGE of an alert of kind k carries the
// finding's message: an EXCEPTION's reason, an HTACCESS_DIRECTIVE's
// directives and lines, a VERSION_DOWNGRADE's releases.
func (k Kind) InLine() bool {
	r, _ := lookup(k)
	return r.inLine
}

// IsUnsigned reports whether k is a kind of the unsigned coverage (scope
// "unsigned"), not of a signed scope.
func (k Kind) IsUnsigned() bool {
	r, _ := lookup(k)
	return r.unsigned
}
