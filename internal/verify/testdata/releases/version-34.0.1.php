<?php 
$OC_Version = array(34,0,1,2);
$OC_VersionString = '34.0.1';
$OC_Edition = '';
$OC_Channel = 'stable';
$OC_VersionCanBeUpgradedFrom = array (
  'nextcloud' => 
  array (
    '33.0' => true,
    '34.0' => true,
  ),
  'owncloud' => 
  array (
    '10.13' => true,
    '10.14' => true,
    '10.15' => true,
    '10.16' => true,
  ),
);
$OC_Build = '';
$vendor = 'nextcloud';
