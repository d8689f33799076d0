// Command writeback is the Writeback portal: self-service password reset with
// writeback to an on-premises Active Directory or OpenLDAP directory.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/writeback/writeback/cmd/internal/cmdline"
)

func main() {
	// Process-wide, so here and not in run: tests call run in one process.
	limitMemory(os.Getenv)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// env is how run reads the environment (tests pass their own), and stdio
// the streams a command uses: the command-line plumbing both programs share.
type (
	env   = cmdline.Env
	stdio = cmdline.IO
)
