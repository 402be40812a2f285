<?php
$CONFIG = array (
  'apps_paths' => 
  array (
    0 => 
    array (
      'path' => '/var/www/html/apps',
      'url' => '/apps',
      'writable' => false,
    ),
    1 => 
    array (
      'path' => '/var/www/html/custom_apps',
      'url' => '/custom_apps',
      'writable' => true,
    ),
    2 => 
    array (
      'path' => '/var/www/html/extra_apps',
      'url' => '/extra_apps',
      'writable' => false,
    ),
  ),
  'datadirectory' => '/var/www/html/data',
  'version' => '33.0.0.16',
  'installed' => true,
);
