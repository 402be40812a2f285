// Package verify checks a Nextcloud installation against its code
// signatures, byte-compatible with Nextcloud's own IntegrityCheck\Checker:
// manifests, trust, RSA-PSS, the walk of a scope's tree and the
// comparison. Code no signature covers is internal/baseline's; the
// regeneration of core/js/mimetypelist.js, which the walk hashes as
// Nextcloud's Checker does, is internal/mimetypelist's.
//
// A scope (core, or one app) ships a signature.json: the SHA-512 of every
// file, an RSA-PSS signature over PHP's json_encode of those hashes, and an
// X.509 certificate that must be issued by one of the trust anchors
// (Nextcloud's resources/codesigning/root.crt) and name the scope as CN
// ("core" is valid for every scope). ParseManifest reads it,
// (*Manifest).Verify checks certificate and signature, and (*Scope).Check
// hashes the scope's tree and compares it with the manifest.
//
// # Differences from Nextcloud
//
//   - Files are compared by path, in every release. Nextcloud compares by
//     hash value (array_diff) through 30.0.1, and so misses a deleted file
//     whose content equals another file's and two files that swapped
//     contents; from 31.0.11 it compares by path too. Every release merges
//     findings with identical hashes into one; integrityd reports each
//     path.
//   - A CRL, when given, is always checked; Nextcloud only checks it when it
//     downloads an app. A revoked certificate is an EXCEPTION with the
//     message "Certificate has been revoked.".
//   - A file or directory that cannot be read is an EXCEPTION for that path
//     (class integrityd\ReadException), and the rest of the scope is still
//     checked; FIFOs, sockets and devices are never opened.
//   - Not a difference: core/js/mimetypelist.js regenerated from custom
//     mime types is rebuilt per release from the configuration and
//     accepted when it matches, as each release's Checker does.
package verify
