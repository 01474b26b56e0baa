// Command floor prints one line and exits: the least a Go program costs to
// start on this machine, which `keyescrow version` is measured against by
// deploy/dev/bench.sh.
package main

import (
	"fmt"
	"runtime"
)

func main() {
	fmt.Printf("floor (%s, %s/%s)\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
