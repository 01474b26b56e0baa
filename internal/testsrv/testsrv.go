// Package testsrv holds what the test-server starters (s3srv, azurite)
// share. The servers take a port on their command line, so the starters
// ask for a free one and retry when another process took it meanwhile.
package testsrv

import "net"

// FreePort returns a port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
