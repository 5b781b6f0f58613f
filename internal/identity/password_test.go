package identity

import (
	"context"
	"errors"
	"regexp"
	"sync"
	"testing"
	"time"

	"smartgate/internal/problem"
)

// Hashes made by the reference implementation (libargon2 1.0, Debian's
// libargon2-1, through argon2id_hash_encoded) with the salt
// "smartgate-salt16".
const (
	refHash      = "$argon2id$v=19$m=19456,t=2,p=1$c21hcnRnYXRlLXNhbHQxNg$HM2TILnCuJeop3VoJ2gv80vnjXkFLl37rrqRCDFzhio" // "correct horse battery staple"
	refHashNFC   = "$argon2id$v=19$m=19456,t=2,p=1$c21hcnRnYXRlLXNhbHQxNg$Wogun+vPXdh3DD4NlhADGJkdqXNW9pKxiN6UmcqTnxU" // "café naïve" in NFC
	refHashOlder = "$argon2id$v=19$m=8192,t=1,p=1$c21hcnRnYXRlLXNhbHQxNg$alObbcFDGMLWNTzJUgd2hYHZPThORxUgeF75uVCfdKw"  // "correct horse battery staple"
)

func TestHashFormat(t *testing.T) {
	h, err := testHasher.HashPassword(context.Background(), goodPassword)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`^\$argon2id\$v=19\$m=19456,t=2,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`)
	if !re.MatchString(h) {
		t.Errorf("HashPassword = %q, want the PHC string $argon2id$v=19$m=19456,t=2,p=1$<16-byte salt>$<32-byte hash>", h)
	}
	h2, _ := testHasher.HashPassword(context.Background(), goodPassword)
	if h == h2 {
		t.Errorf("two hashes of one password are equal: the salt is not random")
	}
	if NeedsRehash(h) {
		t.Errorf("NeedsRehash(fresh hash) = true")
	}
}

func TestVerifyPassword(t *testing.T) {
	own, err := testHasher.HashPassword(context.Background(), goodPassword)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, hash, password string
		want                 bool
	}{
		{"reference hash, right password", refHash, goodPassword, true},
		{"reference hash, wrong password", refHash, "correct horse battery stapl", false},
		{"reference hash, case matters", refHash, "Correct horse battery staple", false},
		{"own hash", own, goodPassword, true},
		{"own hash, wrong password", own, "", false},
		{"NFC password as typed", refHashNFC, "caf\u00e9 na\u00efve", true},
		{"NFD password matches its NFC form", refHashNFC, "cafe\u0301 nai\u0308ve", true},
		{"older parameters still verify", refHashOlder, goodPassword, true},
	} {
		got, err := testHasher.VerifyPassword(context.Background(), tc.hash, tc.password)
		if err != nil || got != tc.want {
			t.Errorf("%s: VerifyPassword = %v, %v; want %v", tc.name, got, err, tc.want)
		}
	}
	if !NeedsRehash(refHashOlder) {
		t.Errorf("NeedsRehash(m=8192,t=1) = false, want true")
	}
}

func TestMalformedHashes(t *testing.T) {
	for _, h := range []string{
		"",
		"plaintext",
		"$argon2i$v=19$m=19456,t=2,p=1$c21hcnRnYXRlLXNhbHQxNg$HM2TILnCuJeop3VoJ2gv80vnjXkFLl37rrqRCDFzhio",        // argon2i
		"$argon2id$v=16$m=19456,t=2,p=1$c21hcnRnYXRlLXNhbHQxNg$HM2TILnCuJeop3VoJ2gv80vnjXkFLl37rrqRCDFzhio",       // old version
		"$argon2id$v=19$m=4194304,t=2,p=1$c21hcnRnYXRlLXNhbHQxNg$HM2TILnCuJeop3VoJ2gv80vnjXkFLl37rrqRCDFzhio",     // 4 GiB
		"$argon2id$v=19$m=19456,t=1000,p=1$c21hcnRnYXRlLXNhbHQxNg$HM2TILnCuJeop3VoJ2gv80vnjXkFLl37rrqRCDFzhio",    // t too large
		"$argon2id$v=19$m=19456,t=2,p=0$c21hcnRnYXRlLXNhbHQxNg$HM2TILnCuJeop3VoJ2gv80vnjXkFLl37rrqRCDFzhio",       // p=0
		"$argon2id$v=19$m=19456,t=2$c21hcnRnYXRlLXNhbHQxNg$HM2TILnCuJeop3VoJ2gv80vnjXkFLl37rrqRCDFzhio",           // no p
		"$argon2id$v=19$m=19456,t=2,p=1,x=3$c21hcnRnYXRlLXNhbHQxNg$HM2TILnCuJeop3VoJ2gv80vnjXkFLl37rrqRCDFzhio",   // unknown
		"$argon2id$v=19$m=19456,t=2,p=1$c21h$HM2TILnCuJeop3VoJ2gv80vnjXkFLl37rrqRCDFzhio",                         // 3-byte salt
		"$argon2id$v=19$m=19456,t=2,p=1$c21hcnRnYXRlLXNhbHQxNg$HM2T",                                              // 3-byte hash
		"$argon2id$v=19$m=19456,t=2,p=1$c21hcnRnYXRlLXNhbHQxNg==$HM2TILnCuJeop3VoJ2gv80vnjXkFLl37rrqRCDFzhio",     // padded
		"$argon2id$v=19$m=19456,t=2,p=1$c21hcnRnYXRlLXNhbHQxNg$HM2TILnCuJeop3VoJ2gv80vnjXkFLl37rrqRCDFzhio$extra", // extra field
	} {
		if ok, err := testHasher.VerifyPassword(context.Background(), h, goodPassword); ok || !errors.Is(err, ErrMalformedHash) {
			t.Errorf("VerifyPassword(%q) = %v, %v; want false, ErrMalformedHash", h, ok, err)
		}
	}
}

// TestHasherLimit: while every slot is taken, a hash waits, and gives up
// when its context ends.
func TestHasherLimit(t *testing.T) {
	h := NewHasher(1)
	if err := h.acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	c, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := h.VerifyPassword(c, refHash, goodPassword); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("VerifyPassword with every slot taken = %v, want the context's deadline", err)
	}
	if _, err := h.HashPassword(c, goodPassword); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("HashPassword with every slot taken = %v, want the context's deadline", err)
	}
	h.release()
	// Many at once all finish, two at a time.
	h2 := NewHasher(2)
	var wg sync.WaitGroup
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if ok, err := h2.VerifyPassword(context.Background(), refHash, goodPassword); !ok || err != nil {
				t.Errorf("concurrent VerifyPassword = %v, %v", ok, err)
			}
		}()
	}
	wg.Wait()
	if n := len(h2.sem); n != 0 {
		t.Errorf("%d slots still held after every hash finished", n)
	}
	if got := NewHasher(0); cap(got.sem) < 1 {
		t.Errorf("NewHasher(0) has %d slots, want GOMAXPROCS", cap(got.sem))
	}
}

func TestCheckPassword(t *testing.T) {
	for _, tc := range []struct {
		username, password string
		ok                 bool
	}{
		{"ines", goodPassword, true},
		{"ines", "twelve chars", true},
		{"ines", "eleven char", false},
		{"ines", "ñññññññññññ", false},                              // 11 characters, 22 bytes: characters count
		{"ines", "ññññññññññññ", true},                              // 12 characters
		{"ines.munoz@example.org", "INES.MUNOZ@example.org", false}, // the username
		{"ines.munoz@example.org", " ines.munoz@example.org ", false},
		{"ines", string(make([]byte, 1025)), false},
		{"ines", "valid start \xff\xfe", false},
	} {
		err := CheckPassword(tc.username, tc.password)
		if (err == nil) != tc.ok {
			t.Errorf("CheckPassword(%q, %q) = %v; want ok %v", tc.username, tc.password, err, tc.ok)
		}
		if err != nil && !problem.IsID(err, problem.PasswordRejected) {
			t.Errorf("CheckPassword(%q, %q) = %v; want a password_rejected problem", tc.username, tc.password, err)
		}
	}
}
