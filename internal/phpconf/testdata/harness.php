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
