package verify

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
	"unsafe"

	"github.com/integrityd/integrityd/internal/finding"
	"github.com/integrityd/integrityd/internal/phpcompat"
)

// The streaming manifest parser (issue 21): signature.json is read through
// a buffer of streamBufSize bytes and decoded in one pass, entry by entry,
// straight into the Manifest's compact entries, while the SHA-1 of the
// signed message (json_encode of the ksorted hashes) is taken as the
// entries go by. Neither the file's text nor the PHP array is ever held
// whole.
//
// The signed message can be hashed as it is read only while the hashes
// come in the order ksort gives them, which is the case for every
// manifest Nextcloud writes (it ksorts before it signs and writes): as
// long as every key so far is a non-numeric string (so that PHP's
// SORT_REGULAR compares them bytewise, a total order) and greater than
// the one before, ksort leaves them as they are. The first key that is
// not (numeric, out of order, repeated) turns the parser to the general
// way: keys are indexed for PHP's last-wins duplicates and, once all are
// read, ksorted (zend_sort step for step, phpjson.go) and encoded; that
// costs an index and a sort array over the compact entries, never the
// text.
//
// What is accepted and refused is what decodeManifest (the whole-text
// parser kept as the reference, see manifest_stream_test.go) accepts and
// refuses, and with the same precedence between problems: a read error,
// then the size limit, then malformed UTF-8 anywhere, then a JSON syntax
// error anywhere (encoding/json's grammar and its 10,000-level nesting
// limit), then the first of PHP's own refusals (nesting of 512 levels, an
// unpaired UTF-16 surrogate escape), then the first problem with the
// fields. So after the first problem the rest of the file is still read,
// to at most the size limit, without keeping anything of it.

// streamBufSize is the read buffer's size.
const streamBufSize = 64 << 10

// goJSONMaxDepth is encoding/json's nesting limit (scanner.go's
// maxNestingDepth): json.Valid refuses deeper input.
const goJSONMaxDepth = 10000

// hashEntryMin is the fewest bytes a hashes entry whose value is a hex
// SHA-512 takes in the file ("":"<128 hex>",).
const hashEntryMin = 134

// parseManifestStream reads a signature.json from r, at most limit bytes,
// through a buffer of bufSize bytes; sizeHint (0 for unknown) is the
// file's size if known.
func parseManifestStream(r io.Reader, name string, limit int64, bufSize int, sizeHint int64) (*Manifest, error) {
	p := &streamParser{
		in: streamReader{
			r:     io.LimitReader(r, limit+1),
			limit: limit,
			buf:   make([]byte, bufSize),
			sum:   sha256.New(),
		},
	}
	p.size = min(sizeHint, limit)
	return p.run(name)
}

// parseManifestEmit is parseManifestStream whose hashes go to emit, in
// batches in key order (each entry passes once), as they are read: the
// Manifest has no entries. It returns errUnordered (not a ManifestError)
// when they cannot go by in key order; the caller then parses the file
// again without emit.
func parseManifestEmit(r io.Reader, name string, limit int64, emit func([]expEntry)) (*Manifest, error) {
	p := &streamParser{
		in: streamReader{
			r:     io.LimitReader(r, limit+1),
			limit: limit,
			buf:   make([]byte, streamBufSize),
			sum:   sha256.New(),
		},
		emit: emit,
	}
	return p.run(name)
}

// run parses the whole input.
func (p *streamParser) run(name string) (*Manifest, error) {
	synErr := p.document()
	p.in.drain()
	if p.unordered {
		return nil, errUnordered
	}
	for _, err := range []error{p.in.readErr, p.in.sizeErr, p.in.utf8Err, synErr, p.phpErr, p.semErr} {
		if err != nil {
			return nil, &ManifestError{name, err.Error()}
		}
	}
	switch {
	case p.hashes == nil:
		return nil, &ManifestError{name, `missing "hashes"`}
	case !p.haveSig:
		return nil, &ManifestError{name, `missing "signature"`}
	case !p.haveCert:
		return nil, &ManifestError{name, `missing "certificate"`}
	}
	m := &Manifest{Certificate: p.cert, ents: p.hashes.ents, signed: p.hashes.signed}
	m.Signature, m.sigNote = phpBase64Decode(p.sig)
	p.in.sum.Sum(m.sum[:0])
	return m, nil
}

// streamReader is the input: a buffer over r, with the checks that hold
// for the file's bytes as a whole (its size, its UTF-8, its SHA-256) made
// as each chunk is read.
type streamReader struct {
	r        io.Reader // limited to limit+1 bytes
	limit    int64
	buf      []byte
	pos, end int   // the unread bytes are buf[pos:end]
	off      int64 // the file offset of buf[0]
	total    int64
	done     bool // EOF, or reading stopped
	sum      hash.Hash
	utf8     utf8Stream

	readErr, sizeErr, utf8Err error
}

// more reads the next chunk once buf is used up; false at the end of the
// input (or once reading stopped on an error).
func (s *streamReader) more() bool {
	for empty := 0; !s.done; empty++ {
		n, err := s.r.Read(s.buf)
		if n == 0 && err == nil && empty >= 100 {
			err = io.ErrNoProgress // as bufio gives up on such a reader
		}
		if n > 0 {
			s.off += int64(s.end)
			s.pos, s.end = 0, n
			s.total += int64(n)
			chunk := s.buf[:n]
			s.sum.Write(chunk)
			if s.utf8Err == nil {
				if i := s.utf8.write(chunk); i >= 0 {
					s.utf8Err = fmt.Errorf("invalid JSON: malformed UTF-8 at offset %d", s.off+int64(i))
				}
			}
			if s.total > s.limit {
				s.sizeErr = fmt.Errorf("larger than %d bytes", s.limit)
				s.done = true
			}
		}
		switch {
		case err == io.EOF:
			s.done = true
			if s.utf8Err == nil && s.utf8.n > 0 {
				s.utf8Err = fmt.Errorf("invalid JSON: malformed UTF-8 at offset %d", s.total-int64(s.utf8.n))
			}
		case err != nil:
			s.readErr = fmt.Errorf("read: %v", err)
			s.done = true
		}
		if n > 0 {
			return s.sizeErr == nil
		}
	}
	return false
}

// drain reads what is left of the input, for the checks more makes.
func (s *streamReader) drain() {
	s.pos = s.end
	for s.more() {
		s.pos = s.end
	}
}

// offset is the file offset of the next unread byte.
func (s *streamReader) offset() int64 { return s.off + int64(s.pos) }

// next returns the next byte and consumes it; ok is false at the end.
func (s *streamReader) next() (byte, bool) {
	if s.pos == s.end && !s.more() {
		return 0, false
	}
	c := s.buf[s.pos]
	s.pos++
	return c, true
}

// skipSpace skips JSON whitespace and returns the next byte, not consumed.
func (s *streamReader) skipSpace() (byte, bool) {
	for {
		for s.pos < s.end {
			switch c := s.buf[s.pos]; c {
			case ' ', '\t', '\n', '\r':
				s.pos++
			default:
				return c, true
			}
		}
		if !s.more() {
			return 0, false
		}
	}
}

// utf8Stream checks UTF-8 across chunks: a sequence cut by a chunk's end
// is held until the next one completes it.
type utf8Stream struct {
	c [utf8.UTFMax]byte
	n int
}

// write checks the next chunk; it returns the index in b at which the
// bytes are not UTF-8 (possibly negative: in the held bytes), or -1.
func (v *utf8Stream) write(b []byte) int {
	if v.n > 0 {
		held := v.n
		used := 0
		for v.n < len(v.c) && used < len(b) && !utf8.FullRune(v.c[:v.n]) {
			v.c[v.n] = b[used]
			v.n++
			used++
		}
		if !utf8.FullRune(v.c[:v.n]) {
			return -1 // b ended too, still incomplete
		}
		if r, size := utf8.DecodeRune(v.c[:v.n]); r == utf8.RuneError && size <= 1 {
			return 0 - held
		}
		v.n = 0
		b = b[used:]
		if i := v.write(b); i >= 0 {
			return i + used
		}
		return -1
	}
	cut := len(b)
	for i := len(b) - 1; i >= 0 && i >= len(b)-(utf8.UTFMax-1); i-- {
		if utf8.RuneStart(b[i]) {
			if !utf8.FullRune(b[i:]) {
				cut = i
			}
			break
		}
	}
	if !utf8.Valid(b[:cut]) {
		for i := 0; i < cut; {
			r, size := utf8.DecodeRune(b[i:cut])
			if r == utf8.RuneError && size <= 1 {
				return i
			}
			i += size
		}
	}
	v.n = copy(v.c[:], b[cut:])
	return -1
}

// streamParser decodes the document from in.
type streamParser struct {
	in    streamReader
	depth int
	// phpErr is the first thing PHP's json_decode refuses that JSON
	// allows (see phpcompat.CheckJSON); semErr the first problem with the
	// fields. Once either is set the rest is only checked.
	phpErr, semErr error

	size     int64 // the file's size if known, else 0
	hashes   *hashesBuilder
	sig      string
	cert     string
	haveSig  bool
	haveCert bool
	key, val []byte // scratch: the string being decoded

	// emit, when set, receives the hashes' entries as they are read, in
	// batches, instead of the Manifest keeping them (Scope.Check's
	// streaming comparison); it is only possible while they come in
	// plain ksort order and "hashes" is read once: otherwise unordered
	// is set and the parse ends in errUnordered.
	emit      func([]expEntry)
	unordered bool
	emitted   bool // "hashes" was read with emit
}

// errUnordered is what a parse with emit ends in when the hashes could not
// be handed on as they came: not in plain ksort order (as Nextcloud
// writes them), or "hashes" given twice.
var errUnordered = errors.New("hashes are not in plain ksort order: they cannot be streamed")

func (p *streamParser) syntax(format string, args ...any) error {
	return fmt.Errorf("invalid JSON: %s at offset %d", fmt.Sprintf(format, args...), p.in.offset())
}

// bad is the syntax error for the byte c, the next one (not consumed),
// or for the end of the input (ok false).
func (p *streamParser) bad(c byte, ok bool, where string) error {
	if !ok {
		return p.syntax("unexpected end of input %s", where)
	}
	return p.syntax("invalid character %q %s", c, where)
}

// badRead is bad for the byte c just consumed by next (ok true: it is
// still in the buffer).
func (p *streamParser) badRead(c byte, ok bool, where string) error {
	if ok {
		p.in.pos--
	}
	return p.bad(c, ok, where)
}

func (p *streamParser) semantic(format string, args ...any) {
	if p.semErr == nil {
		p.semErr = fmt.Errorf(format, args...)
	}
}

// dead reports whether a problem is already known, so that values are
// only checked, not kept.
func (p *streamParser) dead() bool {
	return p.semErr != nil || p.phpErr != nil || p.in.utf8Err != nil
}

// document reads the whole input; it returns the syntax error, if any.
func (p *streamParser) document() error {
	c, ok := p.in.skipSpace()
	if !ok {
		return p.syntax("unexpected end of input")
	}
	var err error
	if c == '{' {
		err = p.top()
	} else {
		p.semantic("not a JSON object")
		err = p.value(c)
	}
	if err != nil {
		return err
	}
	if c, ok := p.in.skipSpace(); ok {
		return p.bad(c, true, "after top-level value")
	}
	return nil
}

// open enters an object or array at its opening bracket.
func (p *streamParser) open() error {
	p.in.pos++
	p.depth++
	if p.depth > goJSONMaxDepth {
		return p.syntax("nested deeper than %d", goJSONMaxDepth)
	}
	if p.depth >= phpcompat.MaxJSONDepth && p.phpErr == nil { // PHP refuses 512 levels (checked with PHP 8.2)
		p.phpErr = fmt.Errorf("invalid JSON: nested deeper than %d at offset %d", phpcompat.MaxJSONDepth, p.in.offset()-1)
	}
	return nil
}

// members reads an object's members from its '{'; member is called with
// each key (decoded in p.key) and the first byte of its value (not
// consumed), and reads that value.
func (p *streamParser) members(member func(c byte) error) error {
	if err := p.open(); err != nil {
		return err
	}
	c, ok := p.in.skipSpace()
	if ok && c == '}' {
		p.in.pos++
		p.depth--
		return nil
	}
	for {
		if !ok || c != '"' {
			return p.bad(c, ok, "looking for beginning of object key string")
		}
		p.key = p.key[:0]
		if err := p.str(&p.key); err != nil {
			return err
		}
		if c, ok = p.in.skipSpace(); !ok || c != ':' {
			return p.bad(c, ok, "after object key")
		}
		p.in.pos++
		if c, ok = p.in.skipSpace(); !ok {
			return p.bad(c, ok, "looking for beginning of value")
		}
		if err := member(c); err != nil {
			return err
		}
		c, ok = p.in.skipSpace()
		switch {
		case ok && c == ',':
			p.in.pos++
			c, ok = p.in.skipSpace()
		case ok && c == '}':
			p.in.pos++
			p.depth--
			return nil
		default:
			return p.bad(c, ok, "after object key:value pair")
		}
	}
}

// elements reads an array's elements from its '['; element is called
// with the index and the first byte (not consumed) of each and reads it.
func (p *streamParser) elements(element func(i int, c byte) error) error {
	if err := p.open(); err != nil {
		return err
	}
	c, ok := p.in.skipSpace()
	if ok && c == ']' {
		p.in.pos++
		p.depth--
		return nil
	}
	for i := 0; ; i++ {
		if !ok {
			return p.bad(c, ok, "looking for beginning of value")
		}
		if err := element(i, c); err != nil {
			return err
		}
		c, ok = p.in.skipSpace()
		switch {
		case ok && c == ',':
			p.in.pos++
			c, ok = p.in.skipSpace()
		case ok && c == ']':
			p.in.pos++
			p.depth--
			return nil
		default:
			return p.bad(c, ok, "after array element")
		}
	}
}

// top reads the top-level object: its known fields are kept, the last of
// repeated ones winning as in a PHP array.
func (p *streamParser) top() error {
	return p.members(func(c byte) error {
		if p.dead() {
			return p.value(c)
		}
		switch string(p.key) {
		case "hashes":
			return p.readHashes(c)
		case "signature", "certificate":
			field := string(p.key)
			if c != '"' {
				p.semantic("%s: not a string", field)
				return p.value(c)
			}
			p.val = p.val[:0]
			if err := p.str(&p.val); err != nil {
				return err
			}
			if field == "signature" {
				p.sig, p.haveSig = string(p.val), true
			} else {
				p.cert, p.haveCert = string(p.val), true
			}
			return nil
		}
		return p.value(c)
	})
}

// readHashes reads the "hashes" value, an object or (as PHP allows) a
// list, into a new hashesBuilder.
func (p *streamParser) readHashes(c byte) error {
	if c != '{' && c != '[' {
		p.semantic("hashes: not an object")
		return p.value(c)
	}
	if p.emit != nil {
		if p.hashes != nil || p.emitted {
			p.unordered = true // a second "hashes": the last wins, in PHP
			p.semantic("hashes: given twice")
			return p.value(c)
		}
		p.emitted = true
	}
	h := newHashesBuilder(p.size, p.in.offset())
	h.emit = p.emit
	entry := func(c byte) error {
		if p.dead() {
			return p.value(c)
		}
		if c != '"' {
			p.semantic("hashes: value for %.200q is not a string (at offset %d)", p.key, p.in.offset())
			return p.value(c)
		}
		p.val = p.val[:0]
		if err := p.str(&p.val); err != nil {
			return err
		}
		if p.dead() { // the key or value held a PHP refusal
			return nil
		}
		if err := h.add(p.key, p.val, p.in.offset()); err != nil {
			if errors.Is(err, errUnordered) {
				p.unordered = true
			}
			p.semantic("hashes: %v", err)
		}
		return nil
	}
	var err error
	if c == '{' {
		err = p.members(entry)
	} else {
		err = p.elements(func(i int, c byte) error {
			p.key = strconv.AppendInt(p.key[:0], int64(i), 10)
			return entry(c)
		})
	}
	if err != nil || p.dead() {
		return err
	}
	if err := h.finish(); err != nil {
		p.semantic("hashes: %v", err)
		return nil
	}
	p.hashes = h
	return nil
}

// value checks one JSON value, c its first byte (not consumed), and
// keeps nothing of it.
func (p *streamParser) value(c byte) error {
	switch {
	case c == '{':
		return p.members(p.value)
	case c == '[':
		return p.elements(func(_ int, c byte) error { return p.value(c) })
	case c == '"':
		return p.str(nil)
	case c == '-' || '0' <= c && c <= '9':
		return p.number()
	case c == 't':
		return p.literal("true")
	case c == 'f':
		return p.literal("false")
	case c == 'n':
		return p.literal("null")
	}
	return p.bad(c, true, "looking for beginning of value")
}

func (p *streamParser) literal(word string) error {
	p.in.pos++
	for i := 1; i < len(word); i++ {
		c, ok := p.in.next()
		if !ok || c != word[i] {
			return p.badRead(c, ok, "in literal "+word)
		}
	}
	return nil
}

// number checks a JSON number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (p *streamParser) number() error {
	digit := func(c byte) bool { return '0' <= c && c <= '9' }
	peek := func() (byte, bool) {
		if p.in.pos == p.in.end && !p.in.more() {
			return 0, false
		}
		return p.in.buf[p.in.pos], true
	}
	digits := func(where string) error {
		c, ok := p.in.next()
		if !ok || !digit(c) {
			return p.badRead(c, ok, where)
		}
		for c, ok := peek(); ok && digit(c); c, ok = peek() {
			p.in.pos++
		}
		return nil
	}
	c, _ := peek()
	if c == '-' {
		p.in.pos++
	}
	if c, ok := peek(); ok && c == '0' {
		p.in.pos++
	} else if err := digits("in numeric literal"); err != nil {
		return err
	}
	if c, ok := peek(); ok && c == '.' {
		p.in.pos++
		if err := digits("after decimal point in numeric literal"); err != nil {
			return err
		}
	}
	if c, ok := peek(); ok && (c == 'e' || c == 'E') {
		p.in.pos++
		if c, ok := peek(); ok && (c == '+' || c == '-') {
			p.in.pos++
		}
		if err := digits("in exponent of numeric literal"); err != nil {
			return err
		}
	}
	return nil
}

// str reads a string literal, at its opening quote, appending its
// decoded text to *out (out nil: only checked). An unpaired UTF-16
// surrogate escape is PHP's refusal, set in p.phpErr (the first of them
// as phpcompat.CheckJSON finds it); the text is then not what PHP would decode,
// and not used.
func (p *streamParser) str(out *[]byte) error {
	in := &p.in
	in.pos++
	pendingHigh := false
	var high rune
	unpaired := func() {
		if p.phpErr == nil {
			p.phpErr = fmt.Errorf("invalid JSON: single unpaired UTF-16 surrogate at offset %d", in.offset())
		}
		pendingHigh = false
	}
	for {
		b := in.buf[in.pos:in.end]
		i := 0
		for i < len(b) && b[i] != '"' && b[i] != '\\' && b[i] >= 0x20 {
			i++
		}
		if i > 0 {
			if pendingHigh {
				unpaired()
			}
			if out != nil {
				*out = append(*out, b[:i]...)
			}
			in.pos += i
		}
		if in.pos == in.end {
			if !in.more() {
				return p.syntax("unexpected end of input in string literal")
			}
			continue
		}
		c := in.buf[in.pos]
		in.pos++
		if c == '"' {
			if pendingHigh {
				unpaired()
			}
			return nil
		}
		if c < 0x20 {
			return p.badRead(c, true, "in string literal")
		}
		// c is '\\'
		e, ok := in.next()
		if !ok {
			return p.syntax("unexpected end of input in string escape code")
		}
		var r rune
		switch e {
		case '"', '\\', '/':
			r = rune(e)
		case 'b':
			r = '\b'
		case 'f':
			r = '\f'
		case 'n':
			r = '\n'
		case 'r':
			r = '\r'
		case 't':
			r = '\t'
		case 'u':
			for k := 0; k < 4; k++ {
				h, ok := in.next()
				var d byte
				switch {
				case ok && '0' <= h && h <= '9':
					d = h - '0'
				case ok && 'a' <= h && h <= 'f':
					d = h - 'a' + 10
				case ok && 'A' <= h && h <= 'F':
					d = h - 'A' + 10
				default:
					return p.badRead(h, ok, `in \u hexadecimal character escape`)
				}
				r = r<<4 | rune(d)
			}
			switch {
			case 0xD800 <= r && r < 0xDC00:
				if pendingHigh {
					unpaired()
				}
				pendingHigh, high = true, r
				continue
			case 0xDC00 <= r && r < 0xE000:
				if !pendingHigh {
					unpaired()
					continue
				}
				pendingHigh = false
				r = 0x10000 + (high-0xD800)<<10 + (r - 0xDC00)
				if out != nil {
					*out = utf8.AppendRune(*out, r)
				}
				continue
			}
		default:
			return p.badRead(e, true, "in string escape code")
		}
		if pendingHigh {
			unpaired()
		}
		if out != nil {
			*out = utf8.AppendRune(*out, r)
		}
	}
}

// hashesBuilder turns the hashes, as they are read, into the Manifest's
// entries and the SHA-1 of the signed message.
type hashesBuilder struct {
	// ents are the entries in the order their keys were first seen (the
	// PHP array's order), the last value of a repeated key winning.
	ents []expEntry
	// size is the file's size (0: unknown), start the offset of the
	// hashes in it: room for ents is made for as many entries as the
	// rest of the file holds at the bytes per entry so far (grow).
	size, start int64
	// empty holds the positions whose value is "" (ents cannot tell "" from
	// 128 zeros), for the general way's encoding.
	empty map[int]bool
	// general is set from the first key not in plain ksort order; until
	// then, the signed message is hashed as the entries come.
	general bool
	// sorted is how many of ents were read in plain order: they are
	// sorted, for a binary search; index has the positions of the rest.
	sorted int
	index  map[string]int
	sha    hash.Hash
	out    []byte // signed message not yet hashed
	arena  []byte // the keys' bytes, in blocks
	signed [sha1.Size]byte

	// With emit (streamParser.emit), entries go to it in batches and
	// are not kept: n counts them, last is the key of the one before.
	emit  func([]expEntry)
	batch []expEntry
	n     int
	last  string
}

// emitBatch is how many entries go to emit at once.
const emitBatch = 512

// msgChunk is how much of the signed message is encoded before it is
// hashed (phpcompat.WriteJSON's chunk).
const msgChunk = 64 << 10

func newHashesBuilder(size, start int64) *hashesBuilder {
	return &hashesBuilder{
		size:  size,
		start: start,
		sha:   sha1.New(),
		out:   make([]byte, 0, msgChunk+512),
	}
}

// add records one entry, key and value decoded (both are scratch bytes,
// not kept); off is the file offset just after it.
func (h *hashesBuilder) add(key, val []byte, off int64) error {
	k := unsafe.String(unsafe.SliceData(key), len(key))
	v := unsafe.String(unsafe.SliceData(val), len(val))
	if h.emit != nil {
		if phpcompat.IsNumeric(k) || (h.n > 0 && k <= h.last) {
			return errUnordered
		}
		e := expEntry{key: h.intern(k)}
		var ok bool
		if e.hash, ok = parseHash(v); !ok {
			e.odd = strings.Clone(v)
		}
		if err := h.encodeHex(k, v, ok); err != nil {
			return err
		}
		h.last = e.key
		h.n++
		if h.batch = append(h.batch, e); len(h.batch) == emitBatch {
			h.emit(h.batch)
			h.batch = make([]expEntry, 0, emitBatch)
		}
		return nil
	}
	if len(h.ents) == cap(h.ents) {
		h.grow(off)
	}
	n := len(h.ents)
	if !h.general {
		if !phpcompat.IsNumeric(k) && (n == 0 || k > h.ents[n-1].key) {
			if err := h.encode(k, v); err != nil {
				return err
			}
			h.push(h.intern(k), v)
			return nil
		}
		h.general, h.sorted = true, n
		h.out = nil
		h.index = make(map[string]int)
	}
	pk := phpcompat.NewKey(k)
	if i, ok := h.find(pk.Str); ok {
		h.set(i, v)
		return nil
	}
	ks := h.intern(pk.Str)
	h.index[ks] = n
	h.push(ks, v)
	return nil
}

// encode appends the next entry, in plain ksort order, to the signed
// message, and hashes what is encoded in chunks.
func (h *hashesBuilder) encode(k, v string) error {
	return h.encodeHex(k, v, false)
}

// encodeHex is encode, where hex says that v is lowercase hex, which
// json_encode writes as it is.
func (h *hashesBuilder) encodeHex(k, v string, hex bool) error {
	var err error
	if len(h.ents) == 0 && h.n == 0 {
		h.out = append(h.out, '{')
	} else {
		h.out = append(h.out, ',')
	}
	if h.out, err = phpcompat.AppendString(h.out, k); err != nil {
		return fmt.Errorf("key: %w", err)
	}
	h.out = append(h.out, ':')
	if hex {
		h.out = append(append(append(h.out, '"'), v...), '"')
	} else if h.out, err = phpcompat.AppendString(h.out, v); err != nil {
		return fmt.Errorf("value of %.200q: %w", k, err)
	}
	if len(h.out) >= msgChunk {
		h.sha.Write(h.out)
		h.out = h.out[:0]
	}
	return nil
}

// grow makes room for more entries. With the file's size known, the
// first 1,024 entries tell how many bytes an entry takes, and so how many
// the rest of the file holds, plus 1/16: one allocation of about the
// entries' size, where append's growth would hold the old array and a
// new one up to 2.25 times its size at once (29 MB of entries for
// 300,000 files).
func (h *hashesBuilder) grow(off int64) {
	n := len(h.ents)
	add := n/4 + 16
	switch {
	case h.size <= off:
	case n < 1024:
		add = int(min(1024-int64(n), (h.size-off)/hashEntryMin+16))
	default:
		rest := int(float64(h.size-off) * float64(n) / float64(off-h.start))
		add = rest + rest/16 + 1024
	}
	ents := make([]expEntry, n, n+add)
	copy(ents, h.ents)
	h.ents = ents
}

func (h *hashesBuilder) find(key string) (int, bool) {
	if i, ok := slices.BinarySearchFunc(h.ents[:h.sorted], key, func(e expEntry, k string) int { return strings.Compare(e.key, k) }); ok {
		return i, true
	}
	i, ok := h.index[key]
	return i, ok
}

func (h *hashesBuilder) push(key, val string) {
	h.ents = append(h.ents, expEntry{key: key})
	h.set(len(h.ents)-1, val)
}

// set gives ents[i] the value val (a view of scratch bytes).
func (h *hashesBuilder) set(i int, val string) {
	e := &h.ents[i]
	var ok bool
	if e.hash, ok = parseHash(val); ok {
		e.odd = ""
	} else {
		e.odd = strings.Clone(val)
	}
	if val == "" {
		if h.empty == nil {
			h.empty = make(map[int]bool)
		}
		h.empty[i] = true
	} else if h.empty != nil {
		delete(h.empty, i)
	}
}

// intern copies key into the arena: keys live as long as the manifest,
// all together, and a block of them costs one allocation, not one each.
func (h *hashesBuilder) intern(key string) string {
	const block = 64 << 10
	if len(key) == 0 {
		return ""
	}
	if len(key) > block/8 {
		return strings.Clone(key)
	}
	if len(h.arena)+len(key) > cap(h.arena) {
		h.arena = make([]byte, 0, block)
	}
	start := len(h.arena)
	h.arena = append(h.arena, key...)
	return unsafe.String(&h.arena[start], len(key))
}

// finish completes the signed message's SHA-1 once every entry is read,
// and leaves ents sorted by key.
func (h *hashesBuilder) finish() error {
	h.arena = nil
	if len(h.batch) > 0 {
		h.emit(h.batch)
		h.batch = nil
	}
	if !h.general {
		if len(h.ents) == 0 && h.n == 0 {
			h.out = append(h.out, "[]"...) // json_encode([])
		} else {
			h.out = append(h.out, '}')
		}
		h.sha.Write(h.out)
		h.sha.Sum(h.signed[:0])
		h.out, h.empty = nil, nil
		return nil
	}
	h.index = nil
	es := make([]phpcompat.Entry, len(h.ents))
	for i := range h.ents {
		es[i].Key = phpcompat.NewKey(h.ents[i].key)
		es[i].Key.Pos = i
	}
	phpcompat.Ksort(es)
	list := phpcompat.IsList(es)
	open, closing := byte('{'), byte('}')
	if list {
		open, closing = '[', ']'
	}
	b := make([]byte, 1, msgChunk+512)
	b[0] = open
	var err error
	for i := range es {
		if len(b) >= msgChunk {
			h.sha.Write(b)
			b = b[:0]
		}
		if i > 0 {
			b = append(b, ',')
		}
		if !list {
			if b, err = phpcompat.AppendString(b, es[i].Key.Str); err != nil {
				return fmt.Errorf("key: %w", err)
			}
			b = append(b, ':')
		}
		e := &h.ents[es[i].Key.Pos]
		switch {
		case e.odd != "":
			if b, err = phpcompat.AppendString(b, e.odd); err != nil {
				return fmt.Errorf("value of %.200q: %w", e.key, err)
			}
		case e.hash.IsZero() && h.empty[es[i].Key.Pos]:
			b = append(b, `""`...)
		default: // lowercase hex: nothing to escape
			b = append(b, '"')
			b = hex.AppendEncode(b, e.hash[:])
			b = append(b, '"')
		}
	}
	h.sha.Write(append(b, closing))
	h.sha.Sum(h.signed[:0])
	h.empty = nil
	slices.SortFunc(h.ents, func(a, b expEntry) int { return strings.Compare(a.key, b.key) })
	return nil
}

// unhex maps the lowercase hex digits to their values, all else to 0xff.
var unhex = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for c := byte('0'); c <= '9'; c++ {
		t[c] = c - '0'
	}
	for c := byte('a'); c <= 'f'; c++ {
		t[c] = c - 'a' + 10
	}
	return t
}()

// parseHash is finding.ParseHash (a lowercase hex SHA-512, else ok
// false) by table, in one pass: a manifest has one a file.
func parseHash(s string) (h finding.Hash, ok bool) {
	if len(s) != 2*len(h) {
		return h, false
	}
	var bad byte
	for i := range h {
		hi, lo := unhex[s[2*i]], unhex[s[2*i+1]]
		bad |= hi | lo
		h[i] = hi<<4 | lo
	}
	if bad&0xf0 != 0 {
		return finding.Hash{}, false
	}
	return h, true
}
