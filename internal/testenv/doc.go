// Package testenv starts private instances of the servers mailtriage's
// tests talk to: redis-server (StartRedis, StartRedisWithPassword,
// StartRedisTLS), a Redis Cluster of such servers (StartRedisCluster, with
// KillMasterOf for failovers) and Dovecot (StartDovecot). Each runs as a child process
// of the test, listens on a free 127.0.0.1 port, keeps its files in the
// test's temporary directory and is stopped by t.Cleanup. NewTLSCert makes
// the throw-away CA and server certificate the TLS servers use.
//
// It never touches a system instance or its data (no fixed ports such as
// Redis' 6379) and never skips: a missing server binary fails the test with
// the name of the Debian package that provides it.
package testenv
