package sqlserver

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/keyescrow/keyescrow/internal/secret"
)

// Password length limits of SQL Server's policy (errors 15116 and 15117).
const (
	MinPasswordLen = 8
	MaxPasswordLen = 128
)

// CheckPassword applies the rules SQL Server applies to an ENCRYPTION BY
// PASSWORD (Windows password policy: 8 to 128 characters, at least three of
// upper case, lower case, digits and symbols) so that a password SQL Server
// would reject is refused before anything is sent. The error never contains
// the password.
func CheckPassword(pw secret.Value) error {
	s := pw.Reveal()
	if !utf8.ValidString(s) {
		return fmt.Errorf("the backup password is not valid UTF-8: write it as UTF-8 text")
	}
	if strings.ContainsRune(s, 0) {
		return fmt.Errorf("the backup password contains a NUL character, which T-SQL cannot carry: choose another password")
	}
	n := utf8.RuneCountInString(s)
	if n < MinPasswordLen {
		return fmt.Errorf("the backup password is too short (%d characters): SQL Server requires at least %d", n, MinPasswordLen)
	}
	if n > MaxPasswordLen {
		return fmt.Errorf("the backup password is too long (%d characters): SQL Server accepts at most %d", n, MaxPasswordLen)
	}
	if c := passwordClasses(s); c < 3 {
		return fmt.Errorf("the backup password is not complex enough (%d of 4 character classes): SQL Server requires three of upper case, lower case, digits and symbols", c)
	}
	return nil
}

// passwordClasses counts the Windows password-policy classes present: upper
// case, lower case, decimal digits, symbols, and letters without case (which
// Windows counts as a class of their own).
func passwordClasses(s string) int {
	var upper, lower, digit, symbol, other bool
	for _, r := range s {
		switch {
		case unicode.IsUpper(r):
			upper = true
		case unicode.IsLower(r):
			lower = true
		case unicode.IsDigit(r):
			digit = true
		case unicode.IsLetter(r):
			other = true
		default:
			symbol = true
		}
	}
	n := 0
	for _, b := range []bool{upper, lower, digit, symbol, other} {
		if b {
			n++
		}
	}
	return n
}
