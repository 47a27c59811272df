package pgcluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// StartStandby starts a streaming-replication standby of c in opts.Dir: a
// copy of c's data taken with pg_basebackup, which then follows c's
// write-ahead log from a port of its own and answers reads only, until
// Promote. It returns once the standby streams from c. Replication is
// asynchronous unless c is told otherwise (SetSynchronous). A standby
// already in opts.Dir is started again as it was left.
func (c *Cluster) StartStandby(ctx context.Context, opts Options) (*Cluster, error) {
	s, err := prepare(opts)
	if err != nil {
		return nil, err
	}
	started := false
	defer func() {
		if !started {
			s.lock.Close()
		}
	}()
	if _, err := os.Stat(s.dataDir()); err == nil {
		s.stopOrphan(ctx)
	} else if err := s.basebackup(ctx, c.port); err != nil {
		return nil, err
	}
	if err := s.startOnFreePort(ctx, opts); err != nil {
		return nil, err
	}
	if err := s.waitStreaming(ctx); err != nil {
		_ = s.run(context.WithoutCancel(ctx), "pg_ctl", "stop", "-w", "-m", "fast", "-D", s.dataDir())
		return nil, err
	}
	started = true
	return s, nil
}

// basebackup copies the primary listening on port into c's data directory,
// under a temporary name first like initdb. -R leaves standby.signal and
// the primary's address (primary_conninfo) in the copy, so that it starts
// as a standby. initdb --auth=trust lets replication connections from
// 127.0.0.1 in (its pg_hba.conf has "host replication all 127.0.0.1/32
// trust").
func (c *Cluster) basebackup(ctx context.Context, port int) error {
	tmp := c.dataDir() + ".copy"
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("remove unfinished data dir: %w", err)
	}
	// A fast checkpoint: the default spreads the primary's checkpoint over
	// minutes. --no-sync like initdb's: a copy lost with its machine is
	// made again.
	if err := c.run(ctx, "pg_basebackup", "-D", tmp, "-h", "127.0.0.1", "-p", strconv.Itoa(port), "-U", "postgres",
		"-X", "stream", "-R", "--checkpoint=fast", "--no-sync"); err != nil {
		return err
	}
	if err := os.Rename(tmp, c.dataDir()); err != nil {
		return fmt.Errorf("move copied data dir in place: %w", err)
	}
	return nil
}

// waitStreaming waits until the standby receives its primary's log.
func (c *Cluster) waitStreaming(ctx context.Context) error {
	return c.poll(ctx, "the standby did not stream from its primary", func(conn *pgx.Conn) (bool, error) {
		var streaming bool
		err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_stat_wal_receiver WHERE status = 'streaming')").Scan(&streaming)
		return streaming, err
	})
}

// Promote makes a standby a primary that accepts writes; it stops
// following its primary for good.
func (c *Cluster) Promote(ctx context.Context) error {
	return c.run(ctx, "pg_ctl", "promote", "-w", "-t", "60", "-D", c.dataDir())
}

// SetSynchronous sets synchronous_standby_names on this primary to names
// ("*": any standby; "": none, asynchronous replication) and returns once it
// is in force: with names, a standby is synchronous, so that every later
// commit waits until a standby has flushed it (synchronous_commit stays on,
// its default); without, no standby is. The setting lives in this cluster's
// postgresql.auto.conf, so a standby copied afterwards inherits it, and once
// promoted would wait for a standby of its own: set it after the standbys
// are made.
func (c *Cluster) SetSynchronous(ctx context.Context, names string) error {
	conn, err := c.connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	// ALTER SYSTEM takes no parameters: the server quotes the literal.
	var alter string
	if err := conn.QueryRow(ctx, "SELECT format('ALTER SYSTEM SET synchronous_standby_names = %L', $1::text)", names).Scan(&alter); err != nil {
		return fmt.Errorf("set synchronous_standby_names: %w", err)
	}
	if _, err := conn.Exec(ctx, alter); err != nil {
		return fmt.Errorf("set synchronous_standby_names: %w", err)
	}
	if _, err := conn.Exec(ctx, "SELECT pg_reload_conf()"); err != nil {
		return fmt.Errorf("reload configuration: %w", err)
	}
	// The reload reaches the server's processes asynchronously. A
	// walsender reports itself synchronous once it has read the new
	// setting; each poll is a new session, which reads it at its start.
	return c.poll(ctx, "synchronous_standby_names not in force", func(conn *pgx.Conn) (bool, error) {
		var setting string
		var synchronous int
		err := conn.QueryRow(ctx, `SELECT current_setting('synchronous_standby_names'),
			(SELECT count(*) FROM pg_stat_replication WHERE sync_state IN ('sync', 'quorum'))`).Scan(&setting, &synchronous)
		return err == nil && setting == names && (synchronous > 0) == (names != ""), err
	})
}

// Kill ends the server as the loss of its machine would: the postmaster
// and every process under it get SIGKILL together, so that none finishes
// a commit, answers a client or sends its standby more log after the
// others died. Connections see their peer vanish; the directory is left as
// it was, with the postmaster.pid of a dead server. Stop afterwards only
// releases the directory.
func (c *Cluster) Kill() error {
	pid, err := c.postmasterPID()
	if err != nil {
		return err
	}
	// Stopped first: a stopped postmaster starts no new process, and a
	// stopped process does nothing while the rest are found and stopped.
	// Only then are they killed, the postmaster last.
	procs := []int{pid}
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		return fmt.Errorf("stop postmaster %d: %w", pid, err)
	}
	for i := 0; i < len(procs); i++ {
		kids, err := children(procs[i])
		if err != nil {
			return err
		}
		for _, k := range kids {
			_ = syscall.Kill(k, syscall.SIGSTOP)
		}
		procs = append(procs, kids...)
	}
	for i := len(procs) - 1; i >= 0; i-- {
		_ = syscall.Kill(procs[i], syscall.SIGKILL)
	}
	c.killed = true
	// Gone when the kernel has closed their sockets: exited, or a zombie
	// that its new parent has not reaped yet.
	deadline := time.Now().Add(time.Minute)
	for _, p := range procs {
		for alive(p) {
			if time.Now().After(deadline) {
				return fmt.Errorf("process %d of the server outlived SIGKILL", p)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return nil
}

// postmasterPID reads the server's process id from its postmaster.pid.
func (c *Cluster) postmasterPID() (int, error) {
	b, err := os.ReadFile(filepath.Join(c.dataDir(), "postmaster.pid"))
	if err != nil {
		return 0, fmt.Errorf("read postmaster.pid: %w", err)
	}
	first, _, _ := bytes.Cut(b, []byte("\n"))
	pid, err := strconv.Atoi(string(bytes.TrimSpace(first)))
	if err != nil || pid <= 1 {
		return 0, fmt.Errorf("postmaster.pid names no process: %q", first)
	}
	return pid, nil
}

// children lists the processes whose parent is pid, from /proc.
func children(pid int) ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	var out []int
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid, _, ok := procStat(p); ok && ppid == pid {
			out = append(out, p)
		}
	}
	return out, nil
}

// alive reports whether pid runs: it exists and is not a zombie.
func alive(pid int) bool {
	_, state, ok := procStat(pid)
	return ok && state != "Z"
}

// procStat reads a process's parent and state from /proc/<pid>/stat.
func procStat(pid int) (ppid int, state string, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, "", false
	}
	// "pid (comm) state ppid ...": comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, "", false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return 0, "", false
	}
	ppid, err = strconv.Atoi(f[1])
	return ppid, f[0], err == nil
}

// FailoverURL is the connection string for database on whichever of
// clusters accepts writes: pgx tries their addresses in order and keeps
// only a read-write session (target_session_attrs), so that after a
// standby's promotion new connections reach it.
func FailoverURL(database string, clusters ...*Cluster) string {
	hosts := make([]string, len(clusters))
	for i, c := range clusters {
		hosts[i] = "127.0.0.1:" + strconv.Itoa(c.port)
	}
	return fmt.Sprintf("postgres://postgres@%s/%s?sslmode=disable&target_session_attrs=read-write",
		strings.Join(hosts, ","), url.PathEscape(database))
}

func (c *Cluster) connect(ctx context.Context) (*pgx.Conn, error) {
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return nil, fmt.Errorf("connect to postgres server: %w", err)
	}
	return conn, nil
}

// poll runs cond on a new session of c until it holds, for up to a minute.
func (c *Cluster) poll(ctx context.Context, what string, cond func(*pgx.Conn) (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var err error
	for {
		var ok bool
		var conn *pgx.Conn
		if conn, err = c.connect(ctx); err == nil {
			ok, err = cond(conn)
			conn.Close(context.WithoutCancel(ctx))
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w", what, errors.Join(ctx.Err(), err))
		case <-time.After(50 * time.Millisecond):
		}
	}
}
