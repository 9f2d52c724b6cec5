// Package testenv starts private instances of the servers mailtriage's
// tests talk to: redis-server (StartRedis, StartRedisWithPassword,
// StartRedisTLS), a Redis Cluster of such servers (StartRedisCluster, with
// KillMasterOf for failovers), Dovecot (StartDovecot) and Cyrus IMAP
// (StartCyrus, from Debian's packages unpacked by scripts/cyrus.sh). Each
// runs as a child process of the test, listens on a free 127.0.0.1 port,
// keeps its files in a directory of its own and is stopped by t.Cleanup.
// NewTLSCert makes the throw-away CA and server certificate the TLS servers
// use. In process, it serves the in-process IMAP server of internal/memimap
// (StartMemIMAP, with the capabilities and keywords a test hides; MemIMAP;
// OAuthIMAP, which takes bearer tokens only) and a local OAuth 2.0
// authorization server (StartOAuth2: RFC 6749 refresh and client
// credentials grants, RFC 8628 device codes, RFC 7523 JWT bearer
// assertions) whose tokens those servers check, and a DNS server answering
// from given records (StartDNS) for the mx route.
//
// It never touches a system instance or its data (no fixed ports such as
// Redis' 6379) and never skips: a missing server fails the test with the
// Debian package that provides it or the command that unpacks it.
package testenv
