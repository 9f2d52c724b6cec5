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
//   - BenchmarkLatency puts the SMTP sink -bench.rtts milliseconds away
//     (0, 20 and 50 by default) behind bench/delayproxy and relays a mailbox
//     of -bench.latency-n messages at each round trip with the bare loop and
//     with `mailtriage run --once`: messages/s, the share of the same run's
//     RTT-0 rate, and the SMTP round trips waited for per message, with the
//     round trip an SMTP NOOP measured and the proxy's own lateness
//     (-bench.rounds rounds, medians reported).
//
// These are benchmarks, not timed tests: nothing fails on speed. All traffic
// stays on loopback.
package bench
