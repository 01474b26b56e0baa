// Command countproxy counts what a client sends to an S3 server: TCP
// connections and HTTP requests per run. It terminates TLS with the server's
// own throw-away certificate (so the client trusts it with the same ca_file),
// opens one upstream TLS connection per client connection and copies bytes
// unchanged both ways, parsing the requests on the way. The benchmark runs
// each tool once through it and reads the counts from the control port:
//
//	countproxy -upstream 127.0.0.1:PORT -ca ca.pem -cert cert.pem -key key.pem -port-file F -control-file G
//	curl http://127.0.0.1:$(cat G)/take   # {"connections":…,"requests":…,"lines":[…],"by_kind":{…}}
//
// Counting adds a TLS handshake per connection, so wall times are measured
// without it.
package main

import (
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"
)

func main() {
	upstream := flag.String("upstream", "", "the server's host:port")
	ca := flag.String("ca", "", "CA the server's certificate is signed by (upstream TLS)")
	cert := flag.String("cert", "", "certificate offered to clients")
	key := flag.String("key", "", "its private key")
	portFile := flag.String("port-file", "", "write the proxy's port here")
	controlFile := flag.String("control-file", "", "write the control port here")
	flag.Parse()
	// run serves until it fails: it returns only an error.
	fmt.Fprintln(os.Stderr, "countproxy:", run(*upstream, *ca, *cert, *key, *portFile, *controlFile))
	os.Exit(1)
}

func run(upstream, ca, cert, key, portFile, controlFile string) error {
	if upstream == "" || portFile == "" || controlFile == "" {
		return fmt.Errorf("usage: countproxy -upstream HOST:PORT [-ca CA -cert C -key K] -port-file F -control-file G")
	}
	p := &Proxy{Dial: func() (net.Conn, error) { return net.DialTimeout("tcp", upstream, 10*time.Second) }}
	if cert != "" {
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return err
		}
		p.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, NextProtos: []string{"http/1.1"}}
		pool := x509.NewCertPool()
		if ca != "" {
			pem, err := os.ReadFile(ca)
			if err != nil {
				return err
			}
			pool.AppendCertsFromPEM(pem)
		}
		host, _, _ := net.SplitHostPort(upstream)
		upTLS := &tls.Config{RootCAs: pool, ServerName: host, NextProtos: []string{"http/1.1"}}
		d := &net.Dialer{Timeout: 10 * time.Second}
		p.Dial = func() (net.Conn, error) { return tls.DialWithDialer(d, "tcp", upstream, upTLS) }
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	cl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	if err := writePort(controlFile, cl); err != nil {
		return err
	}
	go func() { _ = http.Serve(cl, p) }()
	if err := writePort(portFile, l); err != nil {
		return err
	}
	return p.Serve(l)
}

func writePort(path string, l net.Listener) error {
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	return os.WriteFile(path, []byte(port+"\n"), 0o644)
}
