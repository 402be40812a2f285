<?php
// Runs Nextcloud's own mime type list code (Detection, GenerateMimetypeFileBuilder
// from CODE) the way Checker::generateHashes uses it for core/js/mimetypelist.js,
// and prints what it did as JSON:
//   all      base64 of generateFile(getAllAliases()[, getAllNamings()])
//   matched  whether ONDISK's content equals it
//   default  base64 of generateFile(getOnlyDefaultAliases()[, getAllNamings()]) when matched
//   class, message, caught   what was thrown (caught: an \Exception, which
//                            verifyCoreSignature catches)
// php harness.php CODE ROOT CONFIGDIR ONDISK
error_reporting(E_ALL & ~E_DEPRECATED & ~E_USER_DEPRECATED);
ini_set('display_errors', 'stderr');
[, $code, $root, $configDir, $onDisk] = $argv;

class OC {
	public static $SERVERROOT = '';
}
OC::$SERVERROOT = $root;

$psr4 = [
	'OC\\Core\\' => ["$code/core/"],
	'OCP\\' => ["$code/lib/public/"],
	'OC\\' => ["$code/lib/private/"],
	'Psr\\Log\\' => ["$code/3rdparty/psr/log/src/", "$code/3rdparty/psr/log/Psr/Log/"],
];
spl_autoload_register(function ($class) use ($psr4) {
	foreach ($psr4 as $prefix => $dirs) {
		if (strncmp($class, $prefix, strlen($prefix)) !== 0) {
			continue;
		}
		foreach ($dirs as $d) {
			$f = $d . str_replace('\\', '/', substr($class, strlen($prefix))) . '.php';
			if (is_file($f)) {
				require_once $f;
				return;
			}
		}
		return;
	}
});

// The detector as lib/private/Server.php builds it, without the URL generator it
// does not use here.
$rc = new ReflectionClass('OC\Files\Type\Detection');
$det = $rc->newInstanceWithoutConstructor();
(function ($custom, $default) {
	$this->customConfigDir = $custom;
	$this->defaultConfigDir = $default;
	$this->logger = new \Psr\Log\NullLogger();
})->call($det, $configDir, $root . '/resources/config/');

$builder = new \OC\Core\Command\Maintenance\Mimetype\GenerateMimetypeFileBuilder();
$withNames = (new ReflectionMethod($builder, 'generateFile'))->getNumberOfParameters() >= 2;

$out = ['matched' => false];
try {
	$all = $withNames
		? $builder->generateFile($det->getAllAliases(), $det->getAllNamings())
		: $builder->generateFile($det->getAllAliases());
	$out['all'] = base64_encode($all);
	if ($all === file_get_contents($onDisk)) {
		$out['matched'] = true;
		$def = $withNames
			? $builder->generateFile($det->getOnlyDefaultAliases(), $det->getAllNamings())
			: $builder->generateFile($det->getOnlyDefaultAliases());
		$out['default'] = base64_encode($def);
	}
} catch (\Throwable $e) {
	$out['class'] = get_class($e);
	$out['message'] = $e->getMessage();
	$out['caught'] = $e instanceof \Exception;
}
echo json_encode($out), "\n";
