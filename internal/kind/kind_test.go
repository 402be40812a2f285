package kind

import "testing"

// TestTable: each kind's place, MESSAGE_ID, priority and line, as they
// were before the table (journal.AlertID's switch, journal.LineHasMessage,
// verify's kindOrder): the IDs are published and may not change.
func TestTable(t *testing.T) {
	for i, tt := range []struct {
		kind     Kind
		id       string
		priority Priority
		inLine   bool
		unsigned bool
	}{
		{InvalidHash, "90db44e0a320482eb73a78bb4bb5ef96", Warning, false, false},
		{FileMissing, "bd8377a0e8fd4ed99de8970daa194aa2", Warning, false, false},
		{ExtraFile, "207ff942e1af4ca1980adfba3e930bed", Warning, false, false},
		{HardLink, "45be59f575ad45a29516a29582177b33", Warning, false, false},
		{DuplicateApp, "da1d6070832549e7ad585d70bec38056", Warning, false, false},
		{VersionDowngrade, "794303616cd6419ab4d3a0558cfcefa6", Warning, true, false},
		{Exception, "b23377c004f74fe2bbd2cc5ca88918b3", Warning, true, false},
		{HtaccessDirective, "a994cb71afc24c0fabac58c0cb19ab90", Err, true, true},
		{UnsignedChanged, "a9e5bbeba5e14467888a1c4fc31bc16b", Warning, false, true},
		{UnsignedExtra, "778db624f6804dd4a478a632cd77c008", Warning, false, true},
		{UnsignedMissing, "40cac81f393e4beca67408310528110e", Warning, false, true},
	} {
		t.Run(string(tt.kind), func(t *testing.T) {
			if got := All()[i]; got != tt.kind {
				t.Errorf("All()[%d] = %s, want %s", i, got, tt.kind)
			}
			if got := tt.kind.Order(); got != i {
				t.Errorf("Order() = %d, want %d", got, i)
			}
			if got := tt.kind.MessageID(); got != tt.id {
				t.Errorf("MessageID() = %s, want %s", got, tt.id)
			}
			if got := tt.kind.Priority(); got != tt.priority {
				t.Errorf("Priority() = %d, want %d", got, tt.priority)
			}
			if got := tt.kind.InLine(); got != tt.inLine {
				t.Errorf("InLine() = %v, want %v", got, tt.inLine)
			}
			if got := tt.kind.IsUnsigned(); got != tt.unsigned {
				t.Errorf("IsUnsigned() = %v, want %v", got, tt.unsigned)
			}
		})
	}
	if n := len(All()); n != 11 {
		t.Errorf("%d kinds, want 11", n)
	}
	// A kind the table does not have (MISSING_FILE of old state files
	// before it is read as FILE_MISSING) sorts first and alerts as an
	// EXCEPTION, as before.
	if k := Kind("MISSING_FILE"); k.Order() != 0 || k.MessageID() != IDException || k.InLine() || k.IsUnsigned() {
		t.Errorf("unknown kind: order %d, id %s, inLine %v, unsigned %v", k.Order(), k.MessageID(), k.InLine(), k.IsUnsigned())
	}
}
