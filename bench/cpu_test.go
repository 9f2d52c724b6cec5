package bench

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// userHZ is the unit of /proc/stat (USER_HZ, 100 on every Linux port Go
// runs on).
const userHZ = 100

// cpuMark is a reading of the machine's busy CPU time and of this (the
// benchmark's) process's own, so that a phase's CPU can be split into the
// mailtriage process (from its rusage), this process (the bare loop and
// the SMTP sink) and the rest: Dovecot, on a machine otherwise quiet.
type cpuMark struct {
	machine time.Duration
	self    time.Duration
}

func markCPU(b *testing.B) cpuMark {
	b.Helper()
	f, err := os.Open("/proc/stat")
	if err != nil {
		b.Fatalf("read machine CPU: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() {
		b.Fatalf("read /proc/stat: %v", sc.Err())
	}
	fields := strings.Fields(sc.Text()) // cpu user nice system idle iowait irq softirq steal …
	if len(fields) < 9 || fields[0] != "cpu" {
		b.Fatalf("/proc/stat: unexpected first line %q", sc.Text())
	}
	var busy int64
	for i, v := range fields[1:9] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			b.Fatalf("/proc/stat field %d: %v", i+1, err)
		}
		busy += n
	}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatalf("getrusage: %v", err)
	}
	return cpuMark{
		machine: time.Duration(busy) * time.Second / userHZ,
		self:    time.Duration(ru.Utime.Nano() + ru.Stime.Nano()),
	}
}

// cpuSplit is the CPU a phase used, by whom.
type cpuSplit struct {
	machine, mailtriage, bench time.Duration
}

func since(b *testing.B, m cpuMark, mailtriage time.Duration) cpuSplit {
	now := markCPU(b)
	return cpuSplit{machine: now.machine - m.machine, mailtriage: mailtriage, bench: now.self - m.self}
}

// String is the split in seconds: machine busy = mailtriage + this process
// (bare loop, SMTP sink) + the rest (Dovecot).
func (s cpuSplit) String() string {
	rest := s.machine - s.mailtriage - s.bench
	return fmt.Sprintf("CPU %.2fs = process %.2fs + bench/sink %.2fs + Dovecot %.2fs",
		s.machine.Seconds(), s.mailtriage.Seconds(), s.bench.Seconds(), max(rest, 0).Seconds())
}
