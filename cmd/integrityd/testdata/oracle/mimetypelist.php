<?php
// php mimetypelist.php CODE ROOT all|default
//
// Prints core/js/mimetypelist.js for the tree ROOT as the mime type builder
// of the Nextcloud release in CODE (GenerateMimetypeFileBuilder, loaded from
// CODE at run time) writes it: "all" from the default aliases with
// ROOT/config/mimetypealiases.json applied (occ maintenance:mimetype:update-js),
// "default" from ROOT/resources/config/mimetypealiases.dist.json alone (what a
// release ships, and what the Checker hashes when the file on disk is "all").
// The merge follows that release's Detection: array_merge before the builder
// took names (25), array_replace after (33); names come from
// mimetypenames.dist.json plus config/mimetypenames.json.
error_reporting(E_ALL & ~E_DEPRECATED);
if ($argc !== 4) { fwrite(STDERR, "usage: mimetypelist.php CODE ROOT all|default\n"); exit(2); }
[, $code, $root, $mode] = $argv;
class OC { public static $SERVERROOT = ''; }
OC::$SERVERROOT = $root;
require "$code/core/Command/Maintenance/Mimetype/GenerateMimetypeFileBuilder.php";

$builder = new \OC\Core\Command\Maintenance\Mimetype\GenerateMimetypeFileBuilder();
$withNames = (new ReflectionMethod($builder, 'generateFile'))->getNumberOfParameters() >= 2;

function nc_defs(string $root, string $name, bool $custom, bool $replace): array {
	$defs = json_decode(file_get_contents("$root/resources/config/$name.dist.json"), true);
	if (!is_array($defs)) { fwrite(STDERR, "$root/resources/config/$name.dist.json: not a JSON object\n"); exit(1); }
	$f = "$root/config/$name.json";
	if ($custom && file_exists($f)) {
		$c = json_decode(file_get_contents($f), true);
		if (json_last_error() === JSON_ERROR_NONE) { $defs = $replace ? array_replace($defs, $c) : array_merge($defs, $c); }
	}
	return $defs;
}

$aliases = nc_defs($root, 'mimetypealiases', $mode === 'all', $withNames);
if ($withNames) {
	echo $builder->generateFile($aliases, nc_defs($root, 'mimetypenames', true, true));
} else {
	echo $builder->generateFile($aliases);
}
