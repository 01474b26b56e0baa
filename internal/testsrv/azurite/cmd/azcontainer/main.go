// Command azcontainer creates a container in a local Azurite with its
// well-known development account, for scripts (the benchmark); the Go tests
// create theirs through the SDK. It trusts the CA file given, not the
// system roots.
//
//	azcontainer -account-url https://127.0.0.1:PORT/devstoreaccount1 -ca DIR/tls/ca.pem -container bench
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/keyescrow/keyescrow/internal/testsrv/azurite"
)

func main() {
	accountURL := flag.String("account-url", "", "Azurite's account URL, e.g. https://127.0.0.1:10000/devstoreaccount1")
	caFile := flag.String("ca", "", "the CA file of Azurite's certificate (HTTPS)")
	name := flag.String("container", "", "the container to create")
	flag.Parse()
	if err := run(*accountURL, *caFile, *name); err != nil {
		fmt.Fprintln(os.Stderr, "azcontainer:", err)
		os.Exit(1)
	}
}

func run(accountURL, caFile, name string) error {
	if accountURL == "" || name == "" {
		return fmt.Errorf("-account-url and -container are required")
	}
	c, err := azurite.AdminContainer(accountURL, caFile, name)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err = c.Create(ctx, nil)
	return err
}
