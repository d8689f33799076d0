package main

import (
	"runtime/debug"

	"github.com/writeback/writeback/services/admins"
)

// memoryLimit is the soft limit main sets on the Go runtime's memory unless
// GOMEMLIMIT says otherwise: the hashing budget (admins.HashMemoryBudget,
// memory held by running argon2id hashes) and 24 MiB for everything else.
//
// Without it, the garbage collector lets the heap grow to twice what was
// live at its last cycle; a cycle during two hashes sees 38 MiB live, so a
// burst of failed sign-ins took the process to about 110 MB although no
// more than two hashes ever ran at once. With it, the collector runs
// sooner during such a burst and hands freed hash memory back, and the peak
// stays near the limit plus the binary's own pages. It is soft: a process
// that needs more gets more, the collector only works harder.
const memoryLimit = admins.HashMemoryBudget + 24<<20

// limitMemory applies memoryLimit unless the operator set GOMEMLIMIT (which
// the runtime has applied already).
func limitMemory(getenv env) {
	if getenv("GOMEMLIMIT") != "" {
		return
	}
	debug.SetMemoryLimit(memoryLimit)
}
