//go:build !unix

// Command redsync runs commands under a Redlock distributed lock. It needs
// a Unix system: it stops the command through its process group.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "redsync: this command runs on Unix systems only")
	os.Exit(69)
}
