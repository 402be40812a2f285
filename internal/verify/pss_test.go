package verify

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

func testPSSKey(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	k, err := signLeafKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// decodePSS is an independent EMSA-PSS-VERIFY (RFC 8017, 9.1.2) for
// SHA-1, MGF1-SHA-512 and an empty salt, written from the RFC.
func decodePSS(pub *rsa.PublicKey, msg, sig []byte) bool {
	k := (pub.N.BitLen() + 7) / 8
	if len(sig) != k {
		return false
	}
	s := new(big.Int).SetBytes(sig)
	if s.Cmp(pub.N) >= 0 {
		return false
	}
	emBits := pub.N.BitLen() - 1
	emLen := (emBits + 7) / 8
	m := new(big.Int).Exp(s, big.NewInt(int64(pub.E)), pub.N)
	if m.BitLen() > emBits {
		return false
	}
	em := m.FillBytes(make([]byte, emLen))
	if em[emLen-1] != 0xbc {
		return false
	}
	maskedDB, h := em[:emLen-21], em[emLen-21:emLen-1]
	var mask []byte
	for c := uint32(0); len(mask) < len(maskedDB); c++ {
		d := sha512.New()
		d.Write(h)
		d.Write([]byte{byte(c >> 24), byte(c >> 16), byte(c >> 8), byte(c)})
		mask = d.Sum(mask)
	}
	db := make([]byte, len(maskedDB))
	for i := range db {
		db[i] = maskedDB[i] ^ mask[i]
	}
	db[0] &= 0xff >> (8*emLen - emBits)
	for _, c := range db[:len(db)-1] {
		if c != 0 {
			return false
		}
	}
	if db[len(db)-1] != 1 {
		return false
	}
	mHash := sha1.Sum(msg)
	hh := sha1.Sum(append(make([]byte, 8), mHash[:]...))
	return bytes.Equal(hh[:], h)
}

func TestPSSRoundTrip(t *testing.T) {
	key := testPSSKey(t)
	large := make([]byte, 1<<20)
	rand.Read(large)
	for _, msg := range [][]byte{nil, []byte("hello"), []byte(`{"a":"b"}`), large} {
		sig, err := SignPSS(key, DigestSHA1, msg)
		if err != nil {
			t.Fatal(err)
		}
		if len(sig) != 256 {
			t.Errorf("got a %d-byte signature, want 256", len(sig))
		}
		if err := verifyPSSErr(&key.PublicKey, msg, sig); err != nil {
			t.Errorf("VerifyPSS of a fresh signature over %d bytes: %v", len(msg), err)
		}
		if !decodePSS(&key.PublicKey, msg, sig) {
			t.Errorf("signature over %d bytes does not decode as RSASSA-PSS SHA-1/MGF1-SHA-512/salt 0", len(msg))
		}
		again, err := SignPSS(key, DigestSHA1, msg)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(sig, again) {
			t.Errorf("two signatures of the same %d bytes differ; with salt 0 they must be equal", len(msg))
		}
	}
}

func TestPSSTampering(t *testing.T) {
	key := testPSSKey(t)
	pub := &key.PublicKey
	msg := []byte(`{"appinfo\/info.xml":"0123456789abcdef","lib\/a.php":"fedcba9876543210"}`)
	sig, err := SignPSS(key, DigestSHA1, msg)
	if err != nil {
		t.Fatal(err)
	}
	for i := range sig {
		for _, bit := range []byte{0x01, 0x80} {
			bad := bytes.Clone(sig)
			bad[i] ^= bit
			if verifyPSSErr(pub, msg, bad) == nil {
				t.Fatalf("signature with byte %d ^ %#x: got nil, want an error", i, bit)
			}
		}
	}
	for i := range msg {
		bad := bytes.Clone(msg)
		bad[i] ^= 0x01
		if verifyPSSErr(pub, bad, sig) == nil {
			t.Fatalf("message with byte %d flipped: got nil, want an error", i)
		}
	}
	n := pub.N.Bytes()
	nPlus := new(big.Int).Add(pub.N, big.NewInt(1)).Bytes()
	other, err := signCAKey()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name     string
		pub      *rsa.PublicKey
		msg, sig []byte
	}{
		{"message with a byte appended", pub, append(bytes.Clone(msg), ' '), sig},
		{"message truncated", pub, msg[:len(msg)-1], sig},
		{"empty message", pub, nil, sig},
		{"signature one byte short", pub, msg, sig[1:]},
		{"signature one byte long", pub, msg, append(bytes.Clone(sig), 0)},
		{"signature with a leading zero byte", pub, msg, append([]byte{0}, sig...)},
		{"empty signature", pub, msg, nil},
		{"zero signature", pub, msg, make([]byte, 256)},
		{"signature equal to N", pub, msg, n},
		{"signature above N", pub, msg, nPlus[len(nPlus)-256:]},
		{"other key", &other.PublicKey, msg, sig},
		{"nil modulus", &rsa.PublicKey{E: 65537}, msg, sig},
		{"exponent 1", &rsa.PublicKey{N: pub.N, E: 1}, msg, sig},
		{"nil key", nil, msg, sig},
	} {
		if err := verifyPSSErr(tt.pub, tt.msg, tt.sig); err == nil {
			t.Errorf("%s: got nil, want an error", tt.name)
		}
	}
}

// Go's own PSS (one hash for digest and MGF1, a salt) is not Nextcloud's.
func TestPSSRefusesOtherParameters(t *testing.T) {
	key := testPSSKey(t)
	msg := []byte("message")
	d1 := sha1.Sum(msg)
	for _, salt := range []int{rsa.PSSSaltLengthEqualsHash, 1} {
		sig, err := rsa.SignPSS(rand.Reader, key, crypto.SHA1, d1[:], &rsa.PSSOptions{SaltLength: salt})
		if err != nil {
			t.Fatal(err)
		}
		if err := verifyPSSErr(&key.PublicKey, msg, sig); err == nil {
			t.Errorf("Go PSS SHA-1/MGF1-SHA-1 salt %d: got nil, want an error", salt)
		}
	}
	d := sha1.Sum(msg)
	sig, err := rsa.SignPKCS1v15(nil, key, crypto.SHA1, d[:])
	if err != nil {
		t.Fatal(err)
	}
	if err := verifyPSSErr(&key.PublicKey, msg, sig); err == nil {
		t.Error("PKCS#1 v1.5 signature: got nil, want an error")
	}
}

func TestSignPSSKeySizes(t *testing.T) {
	gen := func(t *testing.T, bits int) *rsa.PrivateKey {
		t.Helper()
		start := time.Now()
		k, err := rsa.GenerateKey(rand.Reader, bits)
		if err != nil {
			t.Skipf("cannot generate a %d-bit key: %v", bits, err)
		}
		if time.Since(start) > 5*time.Second {
			t.Logf("generating a %d-bit key took %v", bits, time.Since(start))
		}
		return k
	}
	t.Run("2047 bits", func(t *testing.T) {
		k := gen(t, 2047)
		if k.N.BitLen() != 2047 {
			t.Skipf("generated a %d-bit key", k.N.BitLen())
		}
		_, err := SignPSS(k, DigestSHA1, []byte("m"))
		if err == nil || !strings.Contains(err.Error(), "multiple of 8") {
			t.Errorf("got %v, want an error about the key size", err)
		}
	})
	t.Run("1024 bits", func(t *testing.T) {
		_, err := SignPSS(gen(t, 1024), DigestSHA1, []byte("m"))
		if err == nil || !strings.Contains(err.Error(), "too small") {
			t.Errorf("got %v, want an error about the key size", err)
		}
	})
	t.Run("2056 bits", func(t *testing.T) {
		k := gen(t, 2056)
		sig, err := SignPSS(k, DigestSHA1, []byte("m"))
		if err != nil {
			t.Fatal(err)
		}
		if len(sig) != 257 || verifyPSSErr(&k.PublicKey, []byte("m"), sig) != nil || !decodePSS(&k.PublicKey, []byte("m"), sig) {
			t.Errorf("2056-bit key: got a %d-byte signature that does not verify", len(sig))
		}
	})
	t.Run("invalid key", func(t *testing.T) {
		k := *testPSSKey(t)
		k.D = big.NewInt(3)
		if _, err := SignPSS(&k, DigestSHA1, []byte("m")); err == nil {
			t.Error("got nil, want an error for a key that fails Validate")
		}
	})
}

// openssl runs openssl in dir and returns its combined output.
func openssl(t *testing.T, dir string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command("openssl", args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

var pssOpts = []string{"-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:0", "-sigopt", "rsa_mgf1_md:sha512"}

func opensslVerify(t *testing.T, dir string, msg, sig []byte) (string, error) {
	t.Helper()
	writeFile(t, filepath.Join(dir, "msg.bin"), msg)
	writeFile(t, filepath.Join(dir, "sig.bin"), sig)
	args := append([]string{"dgst", "-sha1"}, pssOpts...)
	return openssl(t, dir, append(args, "-verify", "pub.pem", "-signature", "sig.bin", "msg.bin")...)
}

func TestOpenSSLInterop(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl is not on PATH: interoperability not tested")
	}
	dir := t.TempDir()
	for _, args := range [][]string{
		{"genrsa", "-out", "k.pem", "2048"},
		{"req", "-x509", "-new", "-key", "k.pem", "-subj", "/CN=demoapp", "-days", "1", "-out", "c.pem"},
		{"rsa", "-in", "k.pem", "-pubout", "-out", "pub.pem"},
	} {
		if out, err := openssl(t, dir, args...); err != nil {
			t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	key, err := ParsePrivateKey(mustRead(t, filepath.Join(dir, "k.pem")), "k.pem")
	if err != nil {
		t.Fatal(err)
	}
	certPEM := mustRead(t, filepath.Join(dir, "c.pem"))
	msg := []byte(`{"appinfo\/info.xml":"` + strings.Repeat("ab", 64) + `"}`)

	t.Run("Go signs, openssl verifies", func(t *testing.T) {
		sig, err := SignPSS(key, DigestSHA1, msg)
		if err != nil {
			t.Fatal(err)
		}
		if out, err := opensslVerify(t, dir, msg, sig); err != nil || !strings.Contains(out, "Verified OK") {
			t.Errorf("openssl dgst -verify: %v\n%s", err, out)
		}
		// The openssl check itself can fail.
		bad := bytes.Clone(sig)
		bad[100] ^= 1
		if out, err := opensslVerify(t, dir, msg, bad); err == nil {
			t.Errorf("openssl accepted a tampered signature:\n%s", out)
		}
	})

	t.Run("openssl signs, Go verifies", func(t *testing.T) {
		writeFile(t, filepath.Join(dir, "msg2.bin"), msg)
		args := append([]string{"dgst", "-sha1", "-sign", "k.pem"}, pssOpts...)
		if out, err := openssl(t, dir, append(args, "-out", "sig2.bin", "msg2.bin")...); err != nil {
			t.Fatalf("openssl dgst -sign: %v\n%s", err, out)
		}
		sig := mustRead(t, filepath.Join(dir, "sig2.bin"))
		if err := verifyPSSErr(&key.PublicKey, msg, sig); err != nil {
			t.Errorf("VerifyPSS of openssl's signature: %v", err)
		}
		// With salt 0 the scheme is deterministic: both produce the same bytes.
		ours, err := SignPSS(key, DigestSHA1, msg)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(ours, sig) {
			t.Error("SignPSS and openssl produced different signatures for the same key and message")
		}
	})

	t.Run("sign an app", func(t *testing.T) {
		appDir := filepath.Join(t.TempDir(), "demoapp")
		files := map[string]string{
			"appinfo/info.xml":                  "<?xml version=\"1.0\"?>\n<info><id>demoapp</id></info>\n",
			"lib/Controller/PageController.php": "<?php\nnamespace OCA\\DemoApp\\Controller;\n",
			"img/app.svg":                       "<svg/>",
			"js/demoapp.js":                     "console.log('a & b < c');\n",
			"README.md":                         "# Demo\n",
		}
		put(t, appDir, files)
		sc := NewInstall("", nil, "").App("demoapp", appDir)
		if err := sc.Sign(context.Background(), key, certPEM, DigestSHA1); err != nil {
			t.Fatal(err)
		}
		tr, err := LoadTrust(filepath.Join(dir, "c.pem"), "")
		if err != nil {
			t.Fatal(err)
		}
		res := check(t, sc, tr)
		if !res.Clean() {
			t.Fatalf("check after signing: exception %+v, findings %q", res.Exception, findingLines(res))
		}

		raw := mustRead(t, sc.ManifestPath())
		m, err := ParseManifest(bytes.NewReader(raw), sc.ManifestPath())
		if err != nil {
			t.Fatal(err)
		}

		// The signed message, built independently: sorted ASCII keys,
		// compact JSON, "/" escaped.
		hashes := map[string]string{}
		for k, v := range files {
			hashes[k] = sha512hex(v)
		}
		compact, _ := json.Marshal(hashes)
		wantMsg := strings.ReplaceAll(string(compact), "/", `\/`)
		msg := canonicalOf(t, raw)
		if string(msg) != wantMsg || sha1.Sum(msg) != m.signed {
			t.Errorf("signed message:\n got %s\nwant %s", msg, wantMsg)
		}
		if out, err := opensslVerify(t, dir, msg, m.Signature); err != nil || !strings.Contains(out, "Verified OK") {
			t.Errorf("openssl does not verify the written signature: %v\n%s", err, out)
		}

		var doc struct {
			Hashes      map[string]string `json:"hashes"`
			Signature   string            `json:"signature"`
			Certificate string            `json:"certificate"`
		}
		if err := json.Unmarshal(raw, &doc); err != nil {
			t.Fatal(err)
		}
		sig, err := base64.StdEncoding.Strict().DecodeString(doc.Signature)
		if err != nil || !bytes.Equal(sig, m.Signature) || len(sig) != 256 {
			t.Errorf("signature field: %v, %d bytes, want strict base64 of the 256-byte signature", err, len(sig))
		}

		// Layout of PHP's json_encode(..., JSON_PRETTY_PRINT).
		text := string(raw)
		lines := strings.Split(text, "\n")
		hashLine := regexp.MustCompile(`^        "[^"]+": "[0-9a-f]{128}",?$`)
		if lines[0] != "{" || lines[1] != `    "hashes": {` || lines[len(lines)-1] != "}" {
			t.Errorf("layout: got first lines %q and last line %q", lines[:2], lines[len(lines)-1])
		}
		for i := 2; i < 2+len(files); i++ {
			if !hashLine.MatchString(lines[i]) {
				t.Errorf("line %d: got %q, want an 8-space indented hash entry", i+1, lines[i])
			}
		}
		tail := lines[2+len(files):]
		if len(tail) != 4 || tail[0] != "    }," || !strings.HasPrefix(tail[1], `    "signature": "`) ||
			!strings.HasSuffix(tail[1], `",`) || !strings.HasPrefix(tail[2], `    "certificate": "-----BEGIN CERTIFICATE-----\r\n`) ||
			!strings.HasSuffix(tail[2], `\r\n-----END CERTIFICATE-----"`) {
			t.Errorf("layout: got closing lines %q", tail)
		}
		if strings.HasSuffix(text, "\n") {
			t.Error("signature.json ends with a newline; PHP's output does not")
		}
		for i := 0; i < len(text); i++ {
			if text[i] == '/' && (i == 0 || text[i-1] != '\\') {
				t.Fatalf("unescaped '/' at offset %d: %q", i, text[max(0, i-20):i+1])
			}
		}
		if !strings.Contains(text, `"lib\/Controller\/PageController.php"`) {
			t.Error(`keys are not written with "\/"`)
		}

		// The certificate: phpseclib's PEM, CRLF lines of 64 characters,
		// no final newline, the same DER as c.pem.
		c := doc.Certificate
		if strings.Count(c, "\n") != strings.Count(c, "\r\n") || !strings.HasSuffix(c, "\r\n-----END CERTIFICATE-----") {
			t.Errorf("certificate is not CRLF-terminated PEM without a final newline: %q", c)
		}
		body := strings.Split(c, "\r\n")
		for _, l := range body[1 : len(body)-2] {
			if len(l) != 64 {
				t.Errorf("certificate line %q: %d characters, want 64", l, len(l))
			}
		}
		b1, _ := pem.Decode([]byte(c))
		b2, _ := pem.Decode(certPEM)
		if b1 == nil || b2 == nil || !bytes.Equal(b1.Bytes, b2.Bytes) {
			t.Error("the certificate in signature.json is not c.pem's")
		}

		// Signing again gives the same file (deterministic signature).
		if err := sc.Sign(context.Background(), key, certPEM, DigestSHA1); err != nil {
			t.Fatal(err)
		}
		if again := mustRead(t, sc.ManifestPath()); !bytes.Equal(again, raw) {
			t.Error("signing the same tree twice gave different files")
		}
		// No temporary file is left behind.
		ents, _ := os.ReadDir(filepath.Join(appDir, "appinfo"))
		if len(ents) != 2 {
			var names []string
			for _, e := range ents {
				names = append(names, e.Name())
			}
			t.Errorf("appinfo holds %q, want info.xml and signature.json", names)
		}
	})
}

// forgePSS builds EM for msg by RFC 8017 9.1.1 (SHA-1, MGF1-SHA-512,
// empty salt), with hooks to break it, and signs EM with the textbook RSA
// private operation.
func forgePSS(key *rsa.PrivateKey, msg []byte, breakDB func(db []byte), breakEM func(em []byte)) []byte {
	emBits := key.N.BitLen() - 1
	emLen := (emBits + 7) / 8
	mHash := sha1.Sum(msg)
	h := sha1.Sum(append(make([]byte, 8), mHash[:]...))
	db := make([]byte, emLen-21)
	db[len(db)-1] = 0x01
	if breakDB != nil {
		breakDB(db)
	}
	var mask []byte
	for c := uint32(0); len(mask) < len(db); c++ {
		d := sha512.New()
		d.Write(h[:])
		d.Write([]byte{byte(c >> 24), byte(c >> 16), byte(c >> 8), byte(c)})
		mask = d.Sum(mask)
	}
	em := make([]byte, 0, emLen)
	for i := range db {
		em = append(em, db[i]^mask[i])
	}
	em[0] &= 0xff >> (8*emLen - emBits)
	em = append(append(em, h[:]...), 0xbc)
	if breakEM != nil {
		breakEM(em)
	}
	s := new(big.Int).Exp(new(big.Int).SetBytes(em), key.D, key.N)
	return s.FillBytes(make([]byte, (key.N.BitLen()+7)/8))
}

func TestVerifyPSSMalformedEncoding(t *testing.T) {
	key := testPSSKey(t)
	msg := []byte("signed message")
	good := forgePSS(key, msg, nil, nil)
	if err := verifyPSSErr(&key.PublicKey, msg, good); err != nil {
		t.Fatalf("well-formed encoding: %v", err)
	}
	if sig, _ := SignPSS(key, DigestSHA1, msg); !bytes.Equal(sig, good) {
		t.Fatal("SignPSS differs from the RFC encoding built here")
	}
	for _, tt := range []struct {
		name    string
		breakDB func([]byte)
		breakEM func([]byte)
	}{
		{"separator 0x02", func(db []byte) { db[len(db)-1] = 0x02 }, nil},
		{"separator 0x00", func(db []byte) { db[len(db)-1] = 0x00 }, nil},
		{"non-zero padding first byte", func(db []byte) { db[0] = 0x01 }, nil},
		{"non-zero padding middle byte", func(db []byte) { db[len(db)/2] = 0x80 }, nil},
		{"padding byte before the separator", func(db []byte) { db[len(db)-2] = 0x01 }, nil},
		{"a one-byte salt", func(db []byte) { db[len(db)-2], db[len(db)-1] = 0x01, 0x00 }, nil},
		{"trailer 0xbd", nil, func(em []byte) { em[len(em)-1] = 0xbd }},
		{"hash changed", nil, func(em []byte) { em[len(em)-2] ^= 1 }},
	} {
		sig := forgePSS(key, msg, tt.breakDB, tt.breakEM)
		if err := verifyPSSErr(&key.PublicKey, msg, sig); err == nil {
			t.Errorf("%s: got nil, want an error", tt.name)
		}
	}

	// A set bit above emBits must be refused even when the rest decodes:
	// find a message whose EM stays below N with that bit set.
	for i := 0; i < 1000; i++ {
		msg := []byte("message " + strconv.Itoa(i))
		var em []byte
		forgePSS(key, msg, nil, func(b []byte) { em = bytes.Clone(b) })
		em[0] |= 0x80
		if new(big.Int).SetBytes(em).Cmp(key.N) >= 0 {
			continue
		}
		sig := forgePSS(key, msg, nil, func(b []byte) { b[0] |= 0x80 })
		if err := verifyPSSErr(&key.PublicKey, msg, sig); err == nil {
			t.Errorf("EM with the bit above emBits set: got nil, want an error")
		}
		return
	}
	t.Skip("found no message whose EM with the top bit set stays below N")
}

// verifyPSSErr is VerifyPSS without the digest.
func verifyPSSErr(pub *rsa.PublicKey, msg, sig []byte) error {
	_, err := VerifyPSS(pub, msg, sig)
	return err
}
