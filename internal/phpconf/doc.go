// Package phpconf reads Nextcloud's configuration as Nextcloud reads it,
// without running PHP.
//
// # Model
//
// A config file is PHP. This package lexes the whole language's tokens
// (strings of every kind, numbers, comments, heredoc and nowdoc, close
// tags) and evaluates the small part Nextcloud's files use: assignments to
// variables and to array paths ($CONFIG = array(...), $CONFIG['a']['b'] =
// ..., $x[] = ...), array literals with PHP's key rules, scalars, string
// concatenation, OC::$SERVERROOT, __DIR__, __FILE__, __LINE__ and dirname().
// Everything else must still parse as far as this package needs (balanced
// brackets, statements ending in ';' or a block), and evaluates to UNKNOWN:
// a [Value] of kind [Unknown] that carries the file, the line and why
// ("getenv() cannot be evaluated", "conditional assignment", ...).
//
// UNKNOWN means "any value, or no value at all". It spreads as PHP's
// evaluation would spread the value it stands for:
//
//   - An expression with an UNKNOWN part is UNKNOWN.
//   - The body of an if/elseif/else (and of a loop, a function, a switch)
//     is not decided: each key an if body assigns becomes UNKNOWN, and a
//     wholesale `$CONFIG = array(...)` under an if makes every key that
//     array lists UNKNOWN, and every key $CONFIG held before it (PHP would
//     either keep them or replace the whole array). Keys the body does not
//     name are untouched: whichever branch runs, PHP leaves them as they
//     were. A `return` under an if makes the rest of the file conditional.
//   - An unknown array key (`[getenv('K') => 1]`, `$CONFIG[$k] = 1`) or an
//     append whose index cannot be known makes every key the array held
//     before UNKNOWN, and marks the array "open": keys it does not list may
//     exist, with UNKNOWN values.
//   - A statement this package does not evaluate (foreach, a function call
//     with a variable argument, unset of something other than a literal
//     path, ...) makes every variable it names UNKNOWN; include, require,
//     eval, extract, global, $$name, $GLOBALS, namespace and use make every
//     variable of the file UNKNOWN, except an unconditional `include` or
//     `require` of an absolute path known here (`__DIR__ . '/config.php'`),
//     which is evaluated in the same scope, as PHP does (include_once never
//     is: whether it runs depends on what ran before).
//   - `$x = [...]` under an if leaves each entry of $x that the new array
//     does not list either as it was or absent: merged onto config files
//     where it has that same value, it stays known.
//
// Nothing UNKNOWN is ever guessed: a caller that needs such a value gets an
// error naming the file, the line and the key, and can ask the admin to
// configure it explicitly. A syntax error, content before "<?php" or after
// "?>" (Nextcloud refuses such a file), a file over 4 MiB or a nesting
// deeper than 64 is an error naming the file and the line.
//
// [Load] merges the files as Nextcloud's \OC\Config::readData does:
// config.php, then every *.config.php of the same directory in natural order
// (PHP's glob, then natsort), with array_merge before Nextcloud 33 and
// array_replace_recursive from 33 (see ReplaceRecursiveSince). As in readData, whose
// method includes them all, the files share one scope: a variable one file
// sets is seen by the next; only $CONFIG is unset before each file.
package phpconf
