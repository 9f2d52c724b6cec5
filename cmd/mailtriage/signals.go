package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// shutdownLimit is how long the worker may take to stop after the first
// signal before the process exits anyway.
const shutdownLimit = 10 * time.Second

// signalContext returns a context cancelled by the first SIGINT or SIGTERM,
// so the worker finishes the message in hand, releases its leases and closes
// its connections. A second signal exits at once with 128+signal (130 for
// SIGINT, 143 for SIGTERM), and so does a shutdown that takes longer than
// shutdownLimit. stop undoes it and waits for its goroutine.
func signalContext(parent context.Context, log *slog.Logger) (ctx context.Context, stop func()) {
	ctx, cancel := context.WithCancel(parent)
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		select {
		case sig := <-sigs:
			log.Info("signal received: finishing the message in hand; a second signal exits at once", "signal", sig.String())
			cancel()
		case <-done:
			return
		}
		limit := time.NewTimer(shutdownLimit)
		defer limit.Stop()
		select {
		case sig := <-sigs:
			log.Warn("second signal: exiting at once", "signal", sig.String())
			os.Exit(exitCodeFor(sig))
		case <-limit.C:
			log.Error("shutdown did not finish in time: exiting", "limit", shutdownLimit.String())
			os.Exit(exitFail)
		case <-done:
		}
	}()
	return ctx, func() {
		signal.Stop(sigs)
		close(done)
		<-finished
		cancel()
	}
}

// exitCodeFor is the shell convention for death by signal: 128 + its number.
func exitCodeFor(sig os.Signal) int {
	if s, ok := sig.(syscall.Signal); ok {
		return 128 + int(s)
	}
	return exitFail
}
