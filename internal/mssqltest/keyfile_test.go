package mssqltest

import (
	"bytes"
	"errors"
	"testing"
)

func TestKeyFile(t *testing.T) {
	smk := bytes.Repeat([]byte{7}, smkLen)
	a, err := sealKeyFile(smk, "pw")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := sealKeyFile(smk, "pw")
	t.Run("each seal is different", func(t *testing.T) {
		if bytes.Equal(a, b) {
			t.Fatal("equal")
		}
	})
	t.Run("the right password opens it", func(t *testing.T) {
		got, err := OpenKeyFile(a, "pw")
		if err != nil || !bytes.Equal(got, smk) {
			t.Fatalf("%x %v", got, err)
		}
	})
	t.Run("a wrong password is ErrWrongPassword", func(t *testing.T) {
		if _, err := OpenKeyFile(a, "pW"); !errors.Is(err, ErrWrongPassword) {
			t.Fatal(err)
		}
	})
	t.Run("every flipped byte is ErrCorruptKeyFile", func(t *testing.T) {
		for i := range a {
			c := bytes.Clone(a)
			c[i] ^= 0x80
			if _, err := OpenKeyFile(c, "pw"); !errors.Is(err, ErrCorruptKeyFile) {
				t.Fatalf("byte %d: %v", i, err)
			}
		}
	})
	t.Run("empty and foreign data are ErrCorruptKeyFile", func(t *testing.T) {
		for _, d := range [][]byte{nil, []byte("hello"), bytes.Repeat([]byte{0}, len(a))} {
			if _, err := OpenKeyFile(d, "pw"); !errors.Is(err, ErrCorruptKeyFile) {
				t.Fatal(err)
			}
		}
	})
}
