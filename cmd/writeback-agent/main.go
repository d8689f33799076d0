// Command writeback-agent is the Writeback portal's writeback agent: it runs
// inside the company network, holds the directory connection (the
// service account and its password, sealed with its own key file), and
// keeps one outbound connection to the portal over which it performs the
// portal's directory operations. Nothing connects to it.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/writeback/writeback/cmd/internal/cmdline"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, cmdline.IO{In: os.Stdin, Out: os.Stdout, Err: os.Stderr})
	stop()
	os.Exit(code)
}
