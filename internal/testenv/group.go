package testenv

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// errExited: a server's master process ended while it was starting.
var errExited = errors.New("the master process exited during start")

// startGroup runs cmd, a server's master process, in a process group of
// its own with its output in outPath, and waits until ready answers nil.
// When the master exits first, or timeout passes, the group is killed and
// the error returned. done is closed when the master exits.
func startGroup(cmd *exec.Cmd, outPath string, timeout time.Duration, ready func() error) (done chan struct{}, err error) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := os.Create(outPath)
	if err != nil {
		return nil, err
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("run %s: %w", cmd.Path, err)
	}
	done = make(chan struct{})
	go func() {
		_ = cmd.Wait() // the exit status shows in the log; callers see done
		close(done)
	}()
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-done:
			killGroup(cmd.Process.Pid)
			return nil, errExited
		default:
		}
		err := ready()
		if err == nil {
			return done, nil
		}
		if time.Now().After(deadline) {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
			killGroup(cmd.Process.Pid)
			return nil, fmt.Errorf("not ready within %v: %w", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stopGroup ends the process group of master pid: SIGTERM to all of it,
// SIGKILL when the master has not exited (done) within timeout. It
// reports whether the group emptied without SIGKILL.
func stopGroup(pid int, done <-chan struct{}, timeout time.Duration) bool {
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(timeout):
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		<-done
	}
	return killGroup(pid)
}
