// Command testcert writes a throw-away certificate for 127.0.0.1 and
// localhost (ca.pem, cert.pem, key.pem) into the folder it is given, for the
// local test servers the scripts in deploy/dev start.
package main

import (
	"fmt"
	"os"

	"github.com/keyescrow/keyescrow/internal/testtls"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: testcert DIR")
		os.Exit(2)
	}
	if err := os.MkdirAll(os.Args[1], 0o700); err != nil {
		fmt.Fprintln(os.Stderr, "testcert:", err)
		os.Exit(1)
	}
	f, err := testtls.Write(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "testcert:", err)
		os.Exit(1)
	}
	fmt.Println(f.CA, f.Cert, f.Key)
}
