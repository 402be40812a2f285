<?php
// Differential-test harness: includes each file named on the command line
// in a fresh scope, as \OC\Config::readData does, and prints one JSON line
// per file: the variables the file leaves set, each value encoded so that
// int and string keys, entry order, exact floats and raw bytes survive.
class OC { public static $SERVERROOT = '/srv/nc'; }

function enc($v) {
	if (is_array($v)) {
		$out = [];
		foreach ($v as $k => $x) {
			$out[] = [is_int($k) ? 'i' : 's', is_int($k) ? $k : bin2hex($k), enc($x)];
		}
		return ['a', $out];
	}
	if (is_string($v)) return ['s', bin2hex($v)];
	if (is_int($v)) return ['i', $v];
	if (is_float($v)) return ['f', bin2hex(pack('E', $v))];
	if (is_bool($v)) return ['b', $v];
	if (is_null($v)) return ['n'];
	return ['?', gettype($v)];
}

// --load DIR...: what \OC\Config::readData builds from each DIR (its
// steps, in a method scope: config.php then natsorted *.config.php, one
// scope, $CONFIG unset before each file, array_merge, as before Nextcloud
// 33); --load-replace: the same with array_replace_recursive (from 33).
class Reader {
	public $recursive = false;
	public function read($dir) {
		$cache = [];
		$read = [];
		$configFiles = [$dir . '/config.php'];
		$extra = glob($dir . '/*.config.php');
		if (is_array($extra)) {
			natsort($extra);
			$configFiles = array_merge($configFiles, $extra);
		}
		foreach ($configFiles as $file) {
			unset($CONFIG);
			if (!is_file($file)) {
				continue;
			}
			$read[] = basename($file);
			include $file;
			if (isset($CONFIG) && is_array($CONFIG)) {
				$cache = $this->recursive ? array_replace_recursive($cache, $CONFIG) : array_merge($cache, $CONFIG);
			}
		}
		return ['files' => $read, 'cache' => enc($cache)];
	}
}

if (($argv[1] ?? '') === '--load' || ($argv[1] ?? '') === '--load-replace') {
	foreach (array_slice($argv, 2) as $dir) {
		try {
			$r = new Reader();
			$r->recursive = $argv[1] === '--load-replace';
			echo json_encode($r->read($dir)), "\n";
		} catch (\Throwable $e) {
			echo json_encode(['error' => get_class($e) . ': ' . $e->getMessage()]), "\n";
		}
	}
	exit(0);
}

foreach (array_slice($argv, 1) as $file) {
	try {
		$vars = (function () {
			include func_get_arg(0);
			return get_defined_vars();
		})($file);
		$out = [];
		foreach ($vars as $name => $val) {
			$out[] = [$name, enc($val)];
		}
		echo json_encode(['vars' => $out]), "\n";
	} catch (\Throwable $e) {
		echo json_encode(['error' => get_class($e) . ': ' . $e->getMessage()]), "\n";
	}
}
