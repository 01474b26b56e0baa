package sqlserver

import (
	"strings"
	"testing"

	"github.com/keyescrow/keyescrow/internal/secret"
)

func TestCheckPasswordAppliesSQLServersPolicy(t *testing.T) {
	cases := []struct {
		name, pw string
		wantErr  string // "" = accepted
	}{
		{"three classes and eight characters is accepted", "Abcdefg1", ""},
		{"quotes, backslash and unicode are accepted", `Pä'ss\"wörd😀1`, ""},
		{"upper, lower and a symbol are enough", "Abcdefg!", ""},
		{"letters without case count as a class", "漢字漢字ab12", ""},
		{"seven characters are too short", "Abcde1!", "too short"},
		{"129 characters are too long", "Aa1" + strings.Repeat("x", 126), "too long"},
		{"128 characters are accepted", "Aa1" + strings.Repeat("x", 125), ""},
		{"only lower case and digits is not complex", "abcdefgh12", "not complex"},
		{"only lower case is not complex", "abcdefghijkl", "not complex"},
		{"a NUL character is refused", "Abcdefg1\x00", "NUL"},
		{"invalid UTF-8 is refused", "Abcdefg1\xff", "UTF-8"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckPassword(secret.New(tc.pw))
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("got %v, want an error about %q", err, tc.wantErr)
			}
			if len(tc.pw) >= 4 && strings.Contains(err.Error(), tc.pw) {
				t.Fatalf("the error contains the password: %v", err)
			}
		})
	}
}
