package verify

import (
	"bytes"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha512"
	"crypto/subtle"
	"errors"
	"fmt"
	"math/big"

	"filippo.io/bigmod"
)

// Nextcloud signs with phpseclib 2's RSA::SIGNATURE_PSS and only changes the
// MGF hash and the salt length: RSASSA-PSS (RFC 8017, section 8.1) with a
// SHA-1 message digest, MGF1 with SHA-512 and an empty salt. Go's crypto/rsa
// uses one hash for both and refuses a zero salt when signing, so the
// encoding is done here on top of the raw RSA operations. With an empty salt
// the signature is deterministic.
//
// SHA-1 is the only message digest: every release up to 34.0.2 ships
// phpseclib 2 (nextcloud/3rdparty composer.lock: 2.0.38 in 25.0.12, 2.0.47
// in 33.0.0, 2.0.54 in 34.0.1, 2.0.55 in 34.0.2; phpseclib 3 only on its
// master branch), whose RSA class hashes with SHA-1 unless setHash is called,
// and Checker::verify and createSignatureData never call it. A signature
// made with another digest (phpseclib 3's default is SHA-256) is "Signature
// could not get verified." in every release, and so here.

// Digest is the PSS message digest of a signature.
type Digest string

// DigestSHA1 is the digest of every released Nextcloud's signatures.
const DigestSHA1 Digest = "sha1"

// ParseDigest reads a digest name (for sign-* --digest): only sha1, since a
// manifest integrityd signs must verify in Nextcloud.
func ParseDigest(s string) (Digest, error) {
	switch Digest(s) {
	case DigestSHA1:
		return DigestSHA1, nil
	case "sha256":
		return "", errors.New(`"sha256": no released Nextcloud verifies a SHA-256 PSS digest (every release up to 34 verifies with phpseclib 2, SHA-1 only); use sha1`)
	}
	return "", fmt.Errorf("unknown digest %q (want sha1)", s)
}

var errPSS = errors.New("PSS signature does not verify")

// mgf1SHA512XOR xors out with MGF1-SHA-512(seed).
func mgf1SHA512XOR(out, seed []byte) {
	var counter [4]byte
	var digest []byte
	done := 0
	for done < len(out) {
		h := sha512.New()
		h.Write(seed)
		h.Write(counter[:])
		digest = h.Sum(digest[:0])
		for i := 0; i < len(digest) && done < len(out); i++ {
			out[done] ^= digest[i]
			done++
		}
		for i := 3; i >= 0; i-- {
			counter[i]++
			if counter[i] != 0 {
				break
			}
		}
	}
}

// pssHash is H = SHA-1(0x00*8 || SHA-1(msg)), the salt being empty.
func pssHash(msg []byte) []byte { return pssHashOf(sha1.Sum(msg)) }

// pssHashOf is pssHash of the message whose SHA-1 is mHash.
func pssHashOf(mHash [sha1.Size]byte) []byte {
	h := sha1.New()
	h.Write(make([]byte, 8))
	h.Write(mHash[:])
	return h.Sum(nil)
}

// emsaPSSEncode is EMSA-PSS-ENCODE with sLen = 0 for a key of emBits bits.
func emsaPSSEncode(msg []byte, emBits int) ([]byte, error) {
	emLen := (emBits + 7) / 8
	pssHashLen := sha1.Size
	if emLen < pssHashLen+2 {
		return nil, errors.New("key too small for PSS with SHA-1")
	}
	em := make([]byte, emLen)
	db := em[:emLen-pssHashLen-1]
	h := em[emLen-pssHashLen-1 : emLen-1]
	copy(h, pssHash(msg))
	db[len(db)-1] = 0x01 // PS || 0x01 || salt(empty)
	mgf1SHA512XOR(db, h)
	db[0] &= 0xFF >> (8*emLen - emBits)
	em[emLen-1] = 0xBC
	return em, nil
}

// emsaPSSVerify is EMSA-PSS-VERIFY with sLen = 0.
func emsaPSSVerify(mHash [sha1.Size]byte, em []byte, emBits int) error {
	emLen := (emBits + 7) / 8
	pssHashLen := sha1.Size
	if len(em) != emLen || emLen < pssHashLen+2 || em[emLen-1] != 0xBC {
		return errPSS
	}
	db := bytes.Clone(em[:emLen-pssHashLen-1])
	h := em[emLen-pssHashLen-1 : emLen-1]
	mask := byte(0xFF >> (8*emLen - emBits))
	if db[0]&^mask != 0 {
		return errPSS
	}
	mgf1SHA512XOR(db, h)
	db[0] &= mask
	for _, c := range db[:len(db)-1] {
		if c != 0 {
			return errPSS
		}
	}
	if db[len(db)-1] != 0x01 {
		return errPSS
	}
	if subtle.ConstantTimeCompare(h, pssHashOf(mHash)) != 1 {
		return errPSS
	}
	return nil
}

// VerifyPSS checks sig over msg with Nextcloud's PSS parameters and says
// which digest verified (always DigestSHA1, the only one). Like phpseclib
// it requires the signature to be exactly as long as the modulus.
func VerifyPSS(pub *rsa.PublicKey, msg, sig []byte) (Digest, error) {
	return verifyPSSSum(pub, sha1.Sum(msg), sig)
}

// verifyPSSSum is VerifyPSS of the message whose SHA-1 is mHash (a
// manifest's signed message is hashed as it is encoded, never held).
func verifyPSSSum(pub *rsa.PublicKey, mHash [sha1.Size]byte, sig []byte) (Digest, error) {
	if pub == nil || pub.N == nil || pub.N.Sign() <= 0 || pub.E < 2 {
		return "", errors.New("invalid RSA public key")
	}
	k := (pub.N.BitLen() + 7) / 8
	if len(sig) != k {
		return "", fmt.Errorf("signature is %d bytes, key needs %d", len(sig), k)
	}
	s := new(big.Int).SetBytes(sig)
	if s.Cmp(pub.N) >= 0 {
		return "", errPSS
	}
	m := new(big.Int).Exp(s, big.NewInt(int64(pub.E)), pub.N)
	emBits := pub.N.BitLen() - 1
	emLen := (emBits + 7) / 8
	if (m.BitLen()+7)/8 > emLen {
		return "", errPSS
	}
	em := m.FillBytes(make([]byte, emLen))
	if emsaPSSVerify(mHash, em, emBits) != nil {
		return "", errPSS
	}
	return DigestSHA1, nil
}

// SignPSS signs msg with Nextcloud's PSS parameters and digest d, which
// must be DigestSHA1. The private operation
// uses constant-time modular arithmetic with CRT, as crypto/rsa does, and
// its result is checked with the public key before it is returned.
func SignPSS(priv *rsa.PrivateKey, d Digest, msg []byte) ([]byte, error) {
	if d != DigestSHA1 {
		return nil, fmt.Errorf("PSS digest %q: Nextcloud verifies sha1 only", d)
	}
	if err := priv.Validate(); err != nil {
		return nil, fmt.Errorf("invalid RSA private key: %v", err)
	}
	if priv.N.BitLen()%8 != 0 {
		// phpseclib computes emBits from the byte length of the modulus;
		// the two only agree when the bit length is a multiple of 8.
		return nil, fmt.Errorf("RSA key of %d bits: the size must be a multiple of 8 for Nextcloud", priv.N.BitLen())
	}
	if priv.N.BitLen() < 2048 {
		return nil, fmt.Errorf("RSA key of %d bits is too small (at least 2048)", priv.N.BitLen())
	}
	em, err := emsaPSSEncode(msg, priv.N.BitLen()-1)
	if err != nil {
		return nil, err
	}
	return rsaPrivate(priv, em)
}

// rsaPrivate computes c^d mod N. With two primes it uses CRT; it always
// verifies the result (a fault would otherwise leak the key).
func rsaPrivate(priv *rsa.PrivateKey, c []byte) ([]byte, error) {
	N, err := bigmod.NewModulus(priv.N.Bytes())
	if err != nil {
		return nil, err
	}
	cN, err := bigmod.NewNat().SetBytes(c, N)
	if err != nil {
		return nil, errors.New("message representative out of range")
	}
	var m *bigmod.Nat
	if len(priv.Primes) == 2 {
		priv.Precompute()
		P, err := bigmod.NewModulus(priv.Primes[0].Bytes())
		if err != nil {
			return nil, err
		}
		Q, err := bigmod.NewModulus(priv.Primes[1].Bytes())
		if err != nil {
			return nil, err
		}
		qinv, err := bigmod.NewNat().SetBytes(priv.Precomputed.Qinv.Bytes(), P)
		if err != nil {
			return nil, err
		}
		t0 := bigmod.NewNat()
		m = bigmod.NewNat().Exp(t0.Mod(cN, P), priv.Precomputed.Dp.Bytes(), P)
		m2 := bigmod.NewNat().Exp(t0.Mod(cN, Q), priv.Precomputed.Dq.Bytes(), Q)
		m.Sub(t0.Mod(m2, P), P)
		m.Mul(qinv, P)
		m.ExpandFor(N).Mul(t0.Mod(Q.Nat(), N), N)
		m.Add(m2.ExpandFor(N), N)
	} else {
		m = bigmod.NewNat().Exp(cN, priv.D.Bytes(), N)
	}
	check := bigmod.NewNat().ExpShortVarTime(m, uint(priv.E), N)
	if check.Equal(cN) != 1 {
		return nil, errors.New("RSA private operation failed its self-check")
	}
	return m.Bytes(N), nil
}
