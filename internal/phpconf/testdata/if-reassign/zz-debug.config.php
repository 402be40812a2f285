<?php
// Start from config.php and, on the command line only, log more: no
// branch can set apps_paths.
include __DIR__ . '/config.php';
if (PHP_SAPI === 'cli') {
  $CONFIG['loglevel'] = 0;
} else {
  $CONFIG = array('loglevel' => 2);
}
