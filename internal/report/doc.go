// Package report writes a check's results (a verify.Report) in the formats
// people and programs read: Nextcloud's own (the admin page's text with
// "Technical information", "Results" and "Raw output"; occ's plain, json
// and json_pretty, byte for byte as PHP writes them), and integrityd's
// detail-json.
package report
