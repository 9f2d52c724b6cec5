package testenv

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Redis timings.
const (
	redisStartTimeout = 10 * time.Second
	redisStopTimeout  = 5 * time.Second
	redisPortAttempts = 5
)

// Redis is a private redis-server started for one test.
type Redis struct {
	// Addr is host:port on 127.0.0.1.
	Addr string
	// URL is redis://[:password@]Addr/0, ready for store.Open.
	URL string
	// Password is the requirepass value, "" when none.
	Password string
	// TLS is the server's certificate when it speaks only TLS (URL is then
	// rediss://), nil otherwise; TLS.RootCAs verifies it.
	TLS *TLSCert

	t       testing.TB
	bin     string
	dir     string
	port    int
	busPort int // the cluster bus port of a cluster node, 0 otherwise

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

// StartRedis starts a redis-server without a password on a free loopback
// port, with no persistence, and stops it when the test ends.
func StartRedis(t testing.TB) *Redis {
	t.Helper()
	return startRedis(t, "", false, false)
}

// StartRedisWithPassword is StartRedis with --requirepass password; URL
// carries the password.
func StartRedisWithPassword(t testing.TB, password string) *Redis {
	t.Helper()
	if password == "" {
		t.Fatalf("testenv: StartRedisWithPassword needs a password")
	}
	return startRedis(t, password, false, false)
}

// StartRedisTLS is StartRedis speaking only TLS, with a certificate from
// NewTLSCert for 127.0.0.1; URL is rediss://.
func StartRedisTLS(t testing.TB) *Redis {
	t.Helper()
	return startRedis(t, "", true, false)
}

// startRedis starts one server; a cluster node (cluster) runs with
// cluster mode on and its bus on a second free port, and keeps its
// nodes.conf in its directory across Restart.
func startRedis(t testing.TB, password string, useTLS, cluster bool) *Redis {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("testenv: redis-server not found on PATH (install the Debian package redis-server): %v", err)
	}
	r := &Redis{Password: password, t: t, bin: bin, dir: t.TempDir()}
	if useTLS {
		r.TLS = NewTLSCert(t, "")
	}
	t.Cleanup(r.Stop)
	var lastErr error
	for range redisPortAttempts {
		port, err := freePort()
		if err != nil {
			t.Fatalf("testenv: pick a port for redis-server: %v", err)
		}
		r.port = port
		if cluster {
			if r.busPort, err = freePort(); err != nil {
				t.Fatalf("testenv: pick a cluster bus port for redis-server: %v", err)
			}
		}
		if lastErr = r.start(); lastErr == nil {
			r.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
			scheme, auth := "redis://", ""
			if useTLS {
				scheme = "rediss://"
			}
			if password != "" {
				auth = ":" + password + "@"
			}
			r.URL = scheme + auth + r.Addr + "/0"
			return r
		}
	}
	t.Fatalf("testenv: start redis-server: %v", lastErr)
	return nil
}

// freePort asks the kernel for a free loopback port. Another process may
// take it before redis-server binds it; startRedis then tries another.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// start runs redis-server on r.port and waits until it answers PING.
func (r *Redis) start() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd != nil {
		return fmt.Errorf("redis-server on port %d already running", r.port)
	}
	// A TLS server listens only on its TLS port.
	var clientTLS *tls.Config
	listen := []string{"--port", strconv.Itoa(r.port)}
	if r.TLS != nil {
		listen = []string{"--port", "0", "--tls-port", strconv.Itoa(r.port),
			"--tls-cert-file", r.TLS.CertFile, "--tls-key-file", r.TLS.KeyFile, "--tls-auth-clients", "no"}
		clientTLS = &tls.Config{RootCAs: r.TLS.RootCAs, ServerName: "127.0.0.1"}
	}
	args := append(listen,
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", r.dir,
		"--daemonize", "no",
		"--logfile", "redis.log",
	)
	if r.Password != "" {
		args = append(args, "--requirepass", r.Password)
	}
	if r.busPort != 0 {
		args = append(args, "--cluster-enabled", "yes", "--cluster-port", strconv.Itoa(r.busPort),
			"--cluster-config-file", "nodes.conf", "--cluster-node-timeout", strconv.Itoa(int(clusterNodeTimeout/time.Millisecond)))
	}
	cmd := exec.Command(r.bin, args...)
	cmd.Dir = r.dir
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("run %s: %w", r.bin, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait() // the exit status shows in the log; callers see done
		close(done)
	}()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(r.port))
	deadline := time.Now().Add(redisStartTimeout)
	for {
		select {
		case <-done:
			return fmt.Errorf("redis-server on port %d exited during start: %s", r.port, r.logTail())
		default:
		}
		if err := pingRedis(addr, r.Password, clientTLS); err == nil {
			r.cmd, r.done = cmd, done
			return nil
		} else if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-done
			return fmt.Errorf("redis-server on port %d did not answer PING within %v: %v; log: %s", r.port, redisStartTimeout, err, r.logTail())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// dialProbe connects to a server the harness started (over TLS when
// tlsConfig is set), with one second for the dial and for what follows.
func dialProbe(addr string, tlsConfig *tls.Config) (net.Conn, error) {
	d := &net.Dialer{Timeout: time.Second}
	var conn net.Conn
	var err error
	if tlsConfig != nil {
		conn, err = tls.DialWithDialer(d, "tcp", addr, tlsConfig)
	} else {
		conn, err = d.Dial("tcp", addr)
	}
	if err != nil {
		return nil, err
	}
	if err := conn.SetDeadline(time.Now().Add(time.Second)); err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}

// pingRedis sends AUTH (when password is set) and PING in RESP, over TLS
// when tlsConfig is set.
func pingRedis(addr, password string, tlsConfig *tls.Config) error {
	conn, err := dialProbe(addr, tlsConfig)
	if err != nil {
		return err
	}
	defer conn.Close()
	want := []string{"+PONG"}
	req := "PING\r\n"
	if password != "" {
		req = fmt.Sprintf("*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n", len(password), password) + req
		want = []string{"+OK", "+PONG"}
	}
	if _, err := io.WriteString(conn, req); err != nil {
		return err
	}
	br := bufio.NewReader(conn)
	for _, w := range want {
		line, err := br.ReadString('\n')
		if err != nil {
			return err
		}
		if got := strings.TrimRight(line, "\r\n"); got != w {
			return fmt.Errorf("redis answered %q, want %q", got, w)
		}
	}
	return nil
}

// logTail returns the end of redis-server's log for error messages.
func (r *Redis) logTail() string {
	b, err := os.ReadFile(filepath.Join(r.dir, "redis.log"))
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	const limit = 2000
	if len(b) > limit {
		b = b[len(b)-limit:]
	}
	return strings.TrimSpace(string(b))
}

// Stop terminates the server and waits for it to exit; it does nothing
// when the server is not running, so it may be called more than once.
func (r *Redis) Stop() { r.stop(syscall.SIGTERM) }

// Kill ends the server with SIGKILL, as a crash would, and waits for it to
// exit; it does nothing when the server is not running.
func (r *Redis) Kill() { r.stop(syscall.SIGKILL) }

func (r *Redis) stop(sig syscall.Signal) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Signal(sig)
	select {
	case <-r.done:
	case <-time.After(redisStopTimeout):
		_ = r.cmd.Process.Kill()
		<-r.done
	}
	r.cmd, r.done = nil, nil
}

// Restart starts a stopped server again on the same port, with an empty
// data set (it never persists); a cluster node rejoins its cluster from its
// nodes.conf. The test fails when the port was taken meanwhile.
func (r *Redis) Restart() {
	r.t.Helper()
	r.Stop()
	if err := r.start(); err != nil {
		r.t.Fatalf("testenv: restart redis-server on %s: %v", r.Addr, err)
	}
}
