package verify

import (
	"path/filepath"

	"github.com/integrityd/integrityd/internal/phpconf"
)

// UpdaterStage is where Nextcloud's updater extracts the release it is
// about to install, before it touches the server root:
// UPDATEDIR/updater-INSTANCEID/downloads/nextcloud, UPDATEDIR being
// config.php's updatedirectory, else its datadirectory (lib/Updater.php:
// getUpdateDirectoryLocation, downloadUpdate, extractDownload). It is ""
// when the configuration cannot say (no instanceid, a value that needs
// PHP to be known).
func (in *Install) UpdaterStage() string {
	cfg := in.conf
	if cfg == nil {
		c, err := phpconf.Load(filepath.Join(in.Root, "config"), in.Root, in.Version.Major())
		if err != nil {
			return ""
		}
		cfg = c
	}
	id, ok, err := cfg.String("instanceid")
	if !ok || err != nil || id == "" {
		return ""
	}
	dir, ok, err := cfg.String("updatedirectory")
	if err != nil {
		return ""
	}
	if !ok || dir == "" {
		if dir, err = cfg.DataDir(); err != nil || dir == "" {
			return ""
		}
	}
	if !filepath.IsAbs(dir) {
		return "" // relative to the web server's working directory: not knowable
	}
	return filepath.Join(dir, "updater-"+id, "downloads", "nextcloud")
}
