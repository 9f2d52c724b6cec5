// Package e2e holds mailtriage's end-to-end tests: the built binary run
// against a private Dovecot (IMAPS with a generated CA), a private
// redis-server or a bbolt file, and an in-process SMTP sink, on loopback
// only. The tests seed the test corpus into INBOX over IMAP APPEND, run
// `mailtriage run --once` and `mailtriage run`, and then read the mailbox
// and the sink back to check the guarantees of DESIGN.md section 2: nothing
// lost, clean mail forwarded once with its body intact, encrypted and
// unparseable mail flagged into the review folder, nothing done twice across
// second runs, UIDVALIDITY resets, concurrent processes and SIGKILLs (where
// the only duplicates allowed are those of the documented window between the
// SMTP 250 and the outcome record).
//
// The package has no code of its own; everything is in its tests.
package e2e
