// Package e2e holds the end-to-end tests that build and run the two
// programs, writeback and writeback-agent, as separate processes: the
// portal in a network namespace with no route to the directories, a
// TLS-terminating reverse proxy in front of it, and agents that dial out
// through that proxy to the real Samba AD and OpenLDAP of the test bed.
// It has no code of its own; everything is in its _test.go files.
package e2e
