package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// clockTick is the unit of /proc's CPU times (USER_HZ, 100 on Linux).
const clockTick = 10 * time.Millisecond

// cpuShare is the CPU time each part of the system used during one run.
type cpuShare struct {
	Postgres time.Duration `json:"postgres"`
	// Service is LOMS.
	Service time.Duration `json:"loms"`
	// Load is the load generator (minizon bench or pgbench).
	Load time.Duration `json:"load"`
	// Harness is this process: mostly the in-process Kafka broker.
	Harness time.Duration `json:"harness"`
}

// cpuSnapshot reads what Postgres, LOMS and this process have used so far.
// Postgres is the harness's cluster only: its postmaster, with what it
// collected from the backends that exited (cutime, cstime), and its live
// children.
type cpuSnapshot struct {
	postgres, loms, self time.Duration
}

func (e *env) cpuNow() cpuSnapshot {
	var s cpuSnapshot
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		pid, _ := strconv.Atoi(filepath.Base(d))
		ppid, own, children, ok := procCPU(d)
		switch {
		case !ok:
		case e.isLOMS(pid):
			s.loms += own
		case pid == os.Getpid():
			s.self = own
		case pid == e.postmaster:
			s.postgres += own + children
		case ppid == e.postmaster:
			s.postgres += own
		}
	}
	return s
}

// isLOMS says whether pid is a LOMS process. The baseline LOMS counts
// too: in its own runs it serves the calls while the measured LOMS's relay
// publishes their events, both LOMS's work; in the others it idles.
func (e *env) isLOMS(pid int) bool {
	return pid == e.loms.cmd.Process.Pid || e.baseline != nil && pid == e.baseline.cmd.Process.Pid
}

// procCPU reads a process's parent, its own CPU time and that of its
// waited-for children from /proc/PID/stat.
func procCPU(dir string) (ppid int, own, children time.Duration, ok bool) {
	b, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		return 0, 0, 0, false
	}
	// The name is in parentheses and may hold spaces; fields follow it.
	s := string(b)
	open, closing := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || closing < open {
		return 0, 0, 0, false
	}
	fields := strings.Fields(s[closing+1:])
	// Fields 14-17 of stat (utime stime cutime cstime) are 11-14 here.
	if len(fields) < 15 {
		return 0, 0, 0, false
	}
	tick := func(i int) time.Duration {
		n, _ := strconv.ParseInt(fields[i], 10, 64)
		return time.Duration(n) * clockTick
	}
	ppid, _ = strconv.Atoi(fields[1])
	return ppid, tick(11) + tick(12), tick(13) + tick(14), true
}

// since is the CPU used from a to b, with the load generator's own time.
func since(a, b cpuSnapshot, load time.Duration) cpuShare {
	return cpuShare{Postgres: b.postgres - a.postgres, Service: b.loms - a.loms, Load: load, Harness: b.self - a.self}
}

// perRequest spells the shares as microseconds of CPU per request.
func (c cpuShare) perRequest(requests float64) string {
	if requests <= 0 {
		return "-"
	}
	us := func(d time.Duration) float64 { return float64(d.Microseconds()) / requests }
	return fmt.Sprintf("%.0f / %.0f / %.0f / %.0f", us(c.Postgres), us(c.Service), us(c.Load), us(c.Harness))
}
