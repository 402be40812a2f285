package kind

// MESSAGE_IDs of integrityd's journal entries: stable, so that alerting
// rules and journalctl MESSAGE_ID=... can match them. Each is explained in
// packaging/systemd/integrityd.catalog.
const (
	IDInvalidHash = "90db44e0a320482eb73a78bb4bb5ef96" // a file's hash differs from its manifest
	IDFileMissing = "bd8377a0e8fd4ed99de8970daa194aa2" // a signed file is missing
	IDExtraFile   = "207ff942e1af4ca1980adfba3e930bed" // a file not in the manifest
	IDHardLink    = "45be59f575ad45a29516a29582177b33" // a file of a scope has more than one name
	IDException   = "b23377c004f74fe2bbd2cc5ca88918b3" // a manifest, certificate or file could not be verified
	IDResolved    = "f12abb9c394b43fcb30bb54a5894946d" // a finding healed
	IDFullScan    = "dcc6a7a5693d4a80bbb01b8a05f1c2b2" // a full scan finished
	IDNotWatched  = "a1500115dd024703b3ed2aac43266fe1" // directories not watched (inotify limit)
	IDEventsLost  = "b4c02f0874874d628d3710d721f816e8" // events lost; everything is rescanned
	IDStateError  = "c9d9ac4f2b4f4920b5a6b522cd070b79" // the state could not be saved
	IDTrustDiffer = "699e8238dbf14c65af2eaec7e7833dfa" // the install's root.crt differs from the pinned one
	IDScopeGone   = "27f43c0bf33344d1b3b2549050b1a688" // a signed app directory was removed
	IDMount       = "3e690b0c295b40218c01563a7c528299" // a mount or unmount over a checked directory
	IDFlood       = "8447590630fb41c1b37f0fbdc846ca12" // more findings in one directory than are logged one by one
	IDDuplicate   = "da1d6070832549e7ad585d70bec38056" // an app id in several apps roots
	IDDowngrade   = "794303616cd6419ab4d3a0558cfcefa6" // an older signed release replaced a newer one
	IDConfig      = "03300fe11267445284cf02b2387aff89" // Nextcloud's configuration changed the apps roots, or cannot be read
	IDUnenforced  = "d7f2c805f37f4128a72f447e11d0c8c9" // Nextcloud would not enforce its own check here (integrityd checks anyway)
	IDSwapped     = "c452e86823354eedb11ec77a068b5fb0" // a signed file was replaced and put back: other code was there in between
	IDRootMoved   = "fa010012b1c84c1f8d31365ac3ac7b1e" // the install's directory (or an apps root) was moved away, removed or replaced
	IDUpdate      = "3233cf03b589435f9299ad689ea719f4" // Nextcloud's updater staged a verified release, or a scope was updated to it
	IDFolded      = "e09bb9dafb9843a17df8c08abc6a10e8" // alerts of a scope held back while many of its files change without a new manifest (an update by hand)
	// The unsigned coverage, checked against the admin's baseline.
	IDUnsignedChanged   = "a9e5bbeba5e14467888a1c4fc31bc16b" // a file no signature covers changed since the baseline
	IDUnsignedExtra     = "778db624f6804dd4a478a632cd77c008" // a file no signature covers is not in the baseline
	IDUnsignedMissing   = "40cac81f393e4beca67408310528110e" // a file of the baseline is gone
	IDHtaccessDirective = "a994cb71afc24c0fabac58c0cb19ab90" // the root .htaccess has directives the installer does not write
	IDBaseline          = "8a9bf5b912094173a97a7924cfa70530" // the unsigned mode at start, a baseline read again or unusable
	// Who-data (who_data = on) cannot name the writers.
	IDWritersUnknown = "9ea9462b7ef947aca8a094254c4df34e" // fanotify refused or stopped: alerts say ", writer unknown"
)
