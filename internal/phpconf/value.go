package phpconf

import (
	"fmt"
	"math"
	"strconv"
)

// Kind is the PHP type of a [Value], or Unknown.
type Kind uint8

// The kinds of values.
const (
	Null Kind = iota
	Bool
	Int
	Float
	String
	Array
	Unknown
)

var kindNames = [...]string{"null", "bool", "int", "float", "string", "array", "unknown"}

func (k Kind) String() string { return kindNames[k] }

// Reason says where and why a value is UNKNOWN.
type Reason struct {
	File string
	Line int
	Why  string
}

func (r *Reason) String() string { return fmt.Sprintf("%s:%d: %s", r.File, r.Line, r.Why) }

// Value is a PHP value, or UNKNOWN. The zero Value is null.
type Value struct {
	kind Kind
	b    bool
	i    int64
	f    float64
	s    string
	a    *Arr
	r    *Reason
	// orAbsent, for an UNKNOWN entry of an array, is the one value it
	// has if present: the entry is either absent or *orAbsent (an entry
	// of $x that `$x = [...]` under an if may have dropped). Merged onto
	// an equal value, the result is known.
	orAbsent *Value
}

// sameKnown reports whether a and b are known and equal as PHP's ===
// compares config values (arrays: the same entries in the same order).
func sameKnown(a, b Value) bool {
	if a.kind != b.kind {
		return false
	}
	switch a.kind {
	case Unknown:
		return false
	case Array:
		x, y := a.a, b.a
		if x == y {
			return x.open == nil && x.orderUnknown == nil && allKnown(x)
		}
		if x.open != nil || y.open != nil || x.orderUnknown != nil || y.orderUnknown != nil || len(x.keys) != len(y.keys) {
			return false
		}
		for i := range x.keys {
			if x.keys[i] != y.keys[i] || !sameKnown(x.vals[i], y.vals[i]) {
				return false
			}
		}
		return true
	case Float:
		return a.f == b.f
	}
	return a.b == b.b && a.i == b.i && a.s == b.s
}

func allKnown(a *Arr) bool {
	for _, v := range a.vals {
		if v.kind == Unknown || v.kind == Array && (v.a.open != nil || v.a.orderUnknown != nil || !allKnown(v.a)) {
			return false
		}
	}
	return true
}

// Kind reports the value's kind.
func (v Value) Kind() Kind { return v.kind }

// Reason is why the value is UNKNOWN, nil for a known value.
func (v Value) Reason() *Reason { return v.r }

// Str returns a string value.
func (v Value) Str() (string, bool) { return v.s, v.kind == String }

// Int returns an int value.
func (v Value) Int() (int64, bool) { return v.i, v.kind == Int }

// Float returns a float value.
func (v Value) Float() (float64, bool) { return v.f, v.kind == Float }

// BoolValue returns a bool value.
func (v Value) BoolValue() (bool, bool) { return v.b, v.kind == Bool }

// Arr returns an array value.
func (v Value) Arr() (*Arr, bool) { return v.a, v.kind == Array }

// Truthy is PHP's (bool) cast; ok is false for UNKNOWN (and for an open
// array with no listed entry, which may or may not be empty).
func (v Value) Truthy() (truth, ok bool) {
	switch v.kind {
	case Null:
		return false, true
	case Bool:
		return v.b, true
	case Int:
		return v.i != 0, true
	case Float:
		return v.f != 0, true // NaN is true in PHP, and NaN != 0
	case String:
		return v.s != "" && v.s != "0", true
	case Array:
		if len(v.a.keys) > 0 {
			return true, true
		}
		return false, v.a.open == nil
	}
	return false, false
}

func unknown(file string, line int, format string, args ...any) Value {
	return Value{kind: Unknown, r: &Reason{File: file, Line: line, Why: fmt.Sprintf(format, args...)}}
}

func unknownR(r *Reason) Value { return Value{kind: Unknown, r: r} }

func strVal(s string) Value { return Value{kind: String, s: s} }

// Key is an array key: an int or a string, as PHP keeps them.
type Key struct {
	IsInt bool
	I     int64
	S     string
}

func (k Key) String() string {
	if k.IsInt {
		return strconv.FormatInt(k.I, 10)
	}
	return strconv.Quote(k.S)
}

// StrKey is the key a string literal becomes (numeric strings become ints).
func StrKey(s string) Key {
	if i, ok := numericKey(s); ok {
		return Key{IsInt: true, I: i}
	}
	return Key{S: s}
}

// numericKey is PHP's ZEND_HANDLE_NUMERIC_STR: a canonical decimal integer
// in range ("0", "-5"; not "05", "-0", "+5", " 5", "5.0").
func numericKey(s string) (int64, bool) {
	if s == "" || len(s) > 20 {
		return 0, false
	}
	d := s
	if d[0] == '-' {
		d = d[1:]
	}
	if d == "" || (d[0] == '0' && (len(d) > 1 || len(s) != len(d))) {
		return 0, false
	}
	for i := 0; i < len(d); i++ {
		if d[i] < '0' || d[i] > '9' {
			return 0, false
		}
	}
	i, err := strconv.ParseInt(s, 10, 64)
	return i, err == nil
}

// toKey casts a value used as an array key, as PHP does; ok is false where
// PHP would fail or the result is not known.
func toKey(v Value) (Key, string) {
	switch v.kind {
	case Null:
		return Key{S: ""}, ""
	case Bool:
		if v.b {
			return Key{IsInt: true, I: 1}, ""
		}
		return Key{IsInt: true}, ""
	case Int:
		return Key{IsInt: true, I: v.i}, ""
	case Float:
		if math.IsNaN(v.f) || math.IsInf(v.f, 0) || v.f >= 0x1p63 || v.f < -0x1p63 {
			return Key{}, "a non-finite or out-of-range float key is not evaluated"
		}
		return Key{IsInt: true, I: int64(v.f)}, ""
	case String:
		return StrKey(v.s), ""
	case Array:
		return Key{}, "an array used as a key (PHP: illegal offset type)"
	}
	return Key{}, v.r.Why
}

// Arr is a PHP array: ordered entries, int and string keys.
type Arr struct {
	keys []Key
	vals []Value
	idx  map[Key]int
	next int64 // next implicit index, valid when hasNext
	// hasNext: an int key was inserted (PHP's nNextFreeElement is set).
	hasNext bool
	// open: keys not listed may exist with unknown values, and the next
	// implicit index is not known.
	open *Reason
	// nextUnknown: the next implicit index is not known (a conditional
	// assignment may or may not have moved it).
	nextUnknown *Reason
	// orderUnknown: entries a conditional assignment may or may not have
	// added make the order of the entries unknown.
	orderUnknown *Reason
	// shared: the array is referenced from more than one place and must
	// be copied before it is modified (PHP's copy on write).
	shared bool
	// size counts the entries of the tree, saturating at maxSize.
	size int
}

// maxSize bounds the number of entries a value may hold, nested arrays
// counted whole each time they appear (a value built by doubling a shared
// array would be exponential).
const maxSize = 1 << 22

func newArr() *Arr { return &Arr{idx: map[Key]int{}} }

// Len is the number of entries listed.
func (a *Arr) Len() int { return len(a.keys) }

// Entry returns the i-th entry in PHP's order.
func (a *Arr) Entry(i int) (Key, Value) { return a.keys[i], a.vals[i] }

// OrderUnknown reports why the order of the entries is not known, nil if
// it is.
func (a *Arr) OrderUnknown() *Reason { return a.orderUnknown }

// Open reports why keys the array does not list may exist, nil if none.
func (a *Arr) Open() *Reason { return a.open }

// Get looks a key up. A key absent from an open array is UNKNOWN.
func (a *Arr) Get(k Key) (Value, bool) {
	if i, ok := a.idx[k]; ok {
		v := a.vals[i]
		v.orAbsent = nil // read, an absent entry is null: only merges use it
		return v, true
	}
	if a.open != nil {
		return unknownR(a.open), true
	}
	return Value{}, false
}

func valSize(v Value) int {
	if v.kind == Array {
		return v.a.size
	}
	return 1
}

func (a *Arr) set(k Key, v Value) {
	if i, ok := a.idx[k]; ok {
		a.size += valSize(v) - valSize(a.vals[i])
		a.vals[i] = v
	} else {
		a.idx[k] = len(a.keys)
		a.keys = append(a.keys, k)
		a.vals = append(a.vals, v)
		a.size += valSize(v)
	}
	if a.size > maxSize || a.size < 0 {
		a.size = maxSize + 1
	}
	if k.IsInt && (!a.hasNext || k.I >= a.next) {
		a.hasNext = true
		if k.I < math.MaxInt64 {
			a.next = k.I + 1
		} else {
			a.next = math.MaxInt64
		}
	}
}

// nextKey is the key PHP gives an appended element; ok is false when it
// cannot be known or PHP would fail.
func (a *Arr) nextKey() (Key, bool) {
	if a.open != nil || a.nextUnknown != nil {
		return Key{}, false
	}
	if !a.hasNext {
		return Key{IsInt: true}, true
	}
	if _, taken := a.idx[Key{IsInt: true, I: a.next}]; taken {
		return Key{}, false // PHP: "next element is already occupied"
	}
	return Key{IsInt: true, I: a.next}, true
}

// openUp marks every listed entry UNKNOWN and the array open: an unknown
// key may have replaced any of them.
func (a *Arr) openUp(r *Reason) {
	for i := range a.vals {
		a.vals[i] = unknownR(r)
	}
	a.size = len(a.vals)
	if a.open == nil {
		a.open = r
	}
}

// clone makes a shallow copy whose nested arrays are marked shared.
func (a *Arr) clone() *Arr {
	c := &Arr{keys: append([]Key(nil), a.keys...), vals: append([]Value(nil), a.vals...),
		idx: make(map[Key]int, len(a.idx)), next: a.next, hasNext: a.hasNext, open: a.open, size: a.size, nextUnknown: a.nextUnknown, orderUnknown: a.orderUnknown}
	for k, i := range a.idx {
		c.idx[k] = i
	}
	for _, v := range c.vals {
		if v.kind == Array {
			v.a.shared = true
		}
	}
	return c
}

// share marks a value that is about to be stored in a second place.
func share(v Value) Value {
	if v.kind == Array {
		v.a.shared = true
	}
	return v
}

// setMaybe sets k to an UNKNOWN value that a conditional assignment may or
// may not have stored: if storing it would move the next implicit index,
// that index is no longer known.
func (a *Arr) setMaybe(k Key, r *Reason) {
	next, has := a.next, a.hasNext
	if _, exists := a.idx[k]; !exists && a.orderUnknown == nil {
		a.orderUnknown = r
	}
	a.set(k, unknownR(r))
	if a.next != next || a.hasNext != has {
		a.next, a.hasNext = next, has
		if a.nextUnknown == nil {
			a.nextUnknown = r
		}
	}
}

// appendUnknown records an element appended at an index that cannot be
// known. An append never replaces an entry (the next free index is past
// every int key), so the entries stay known, unless PHP would fail ("next
// element is already occupied").
func (a *Arr) appendUnknown(r *Reason) {
	if a.open == nil && a.nextUnknown == nil {
		a.openUp(r) // the occupied case: PHP throws
		return
	}
	a.open = firstReason(a.open, r)
}
