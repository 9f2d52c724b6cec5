// Package bench holds mailtriage's throughput benchmarks against a real
// Dovecot, a real SMTP sink and the real binary (`make bench`):
//
//   - BenchmarkCycle seeds a deterministic mailbox of -bench.n messages (80%
//     ordinary mail, 10% end-to-end encrypted, 10% private relay, with real
//     openssl/gpg messages from testdata/corpus), relays it once with a bare
//     read-and-relay loop over one IMAP and one SMTP connection, then runs
//     `mailtriage run --once` on it and a second, idle cycle, and reports
//     messages/s, MiB/s, peak RSS and the ratio to the bare loop.
//   - BenchmarkMailboxes runs several `mailtriage run --once` processes
//     sharing one Redis over many small mailboxes.
//
// These are benchmarks, not timed tests: nothing fails on speed. All traffic
// stays on loopback.
package bench
