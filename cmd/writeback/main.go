// Command writeback is the Writeback portal: self-service password reset with
// writeback to an on-premises Active Directory or OpenLDAP directory.
package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	// Process-wide, so here and not in run: tests call run in one process.
	limitMemory(os.Getenv)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// env is how run reads the environment (tests pass their own).
type env func(string) string

// stdio bundles the streams a command uses.
type stdio struct {
	in       io.Reader
	out, err io.Writer
}
