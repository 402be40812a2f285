// Package arch holds no code: its test asserts the layering of
// integrityd's packages (each imports only packages of a lower layer, so
// no arrow points back up, and watch, state and journal stay clear of
// verify), reading the imports with go list.
package arch
