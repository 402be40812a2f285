// Package phpcompat does what PHP does, byte for byte, where integrityd
// must agree with it: json_encode of strings and of arrays of strings,
// json_decode (what it refuses, and a reader of what it accepts), PHP's
// array keys (numeric strings become integers) and ksort/sort
// (PHP 8's loose comparison and zend_sort, step for step), base64_decode,
// and version_compare.
//
// Nextcloud signs json_encode($hashes) after ksort($hashes), so a
// manifest's signed message is only reproduced when every one of these
// behaves as PHP's does (see phpjson.go).
package phpcompat
