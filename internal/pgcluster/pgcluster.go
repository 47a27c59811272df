// Package pgcluster runs a private PostgreSQL server from the machine's own
// binaries (initdb, pg_ctl), for `minizon dev` and for tests. PostgreSQL
// refuses to run as root, so as root the server runs as the "postgres" user.
package pgcluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Options configure a cluster.
type Options struct {
	// Dir holds the data directory, socket and log. An existing cluster in
	// Dir is reused; only one process at a time may use it.
	Dir string
	// Throwaway trades crash safety for speed (fsync, full-page writes and
	// synchronous commit off), for test clusters that die with their tests.
	Throwaway bool
}

// Cluster is a running server.
type Cluster struct {
	dir  string
	port int
	cred *syscall.Credential
	bin  string
	// settings are the server's command-line options but the port.
	settings string
	// lock is held while this process owns dir.
	lock *os.File
	// killed: Kill left the directory with no server running.
	killed bool
}

// Start initialises (if needed) and starts a cluster listening on a free
// loopback port.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	c, err := prepare(opts)
	if err != nil {
		return nil, err
	}
	started := false
	defer func() {
		if !started {
			c.lock.Close()
		}
	}()
	if _, err := os.Stat(c.dataDir()); err == nil {
		c.stopOrphan(ctx)
	} else if err := c.initdb(ctx); err != nil {
		return nil, err
	}
	if err := c.startOnFreePort(ctx, opts); err != nil {
		return nil, err
	}
	started = true
	return c, nil
}

// prepare checks and creates opts.Dir, takes its lock and, as root, hands it
// to the postgres user.
func prepare(opts Options) (*Cluster, error) {
	bin, err := findBinaries()
	if err != nil {
		return nil, err
	}
	// pg_ctl starts the server through /bin/sh, with -D and -l in double
	// quotes and -o not quoted at all: a path holding shell syntax would
	// run as a command, and one holding a space breaks the start.
	if i := strings.IndexFunc(opts.Dir, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/._-+,@=:", r))
	}); i >= 0 {
		return nil, fmt.Errorf("%q: PostgreSQL's pg_ctl cannot use a data directory whose path holds %q; choose another (MINIZON_DATA_DIR)",
			opts.Dir, opts.Dir[i:i+1])
	}
	c := &Cluster{dir: opts.Dir, bin: bin}
	// Parents must stay traversable for the postgres user.
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("create cluster dir: %w", err)
	}
	if err := os.MkdirAll(c.sockDir(), 0o700); err != nil {
		return nil, fmt.Errorf("create cluster dir: %w", err)
	}
	if c.lock, err = lockDir(opts.Dir); err != nil {
		return nil, err
	}
	if os.Geteuid() == 0 {
		if err := c.runAsPostgres(); err != nil {
			c.lock.Close()
			return nil, err
		}
	}
	return c, nil
}

// runAsPostgres makes the postgres user own c's directory and run c's
// commands.
func (c *Cluster) runAsPostgres() error {
	var err error
	if c.cred, err = postgresUser(); err != nil {
		return err
	}
	if err := reachable(c.dir, c.cred); err != nil {
		return err
	}
	return chownTree(c.dir, int(c.cred.Uid), int(c.cred.Gid))
}

// stopOrphan stops a server left running in c's directory. We hold the
// lock, so it was left by a process that died without stopping it.
func (c *Cluster) stopOrphan(ctx context.Context) {
	if c.run(ctx, "pg_ctl", "status", "-D", c.dataDir()) == nil {
		_ = c.run(ctx, "pg_ctl", "stop", "-w", "-m", "fast", "-D", c.dataDir())
	}
}

// startOnFreePort starts the server in c's data directory on a free
// loopback port.
func (c *Cluster) startOnFreePort(ctx context.Context, opts Options) error {
	c.settings = "-c listen_addresses=127.0.0.1 -c unix_socket_directories=" + c.sockDir() +
		" -c max_connections=200"
	if opts.Throwaway {
		c.settings += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
	}
	// A port can be taken between choosing and binding it; try a few.
	var err error
	for attempt := 0; ; attempt++ {
		if c.port, err = freePort(); err != nil {
			return err
		}
		err = c.start(ctx)
		if err == nil || attempt == 2 {
			return err
		}
	}
}

func (c *Cluster) start(ctx context.Context) error {
	err := c.run(ctx, "pg_ctl", "start", "-w", "-t", "60", "-D", c.dataDir(),
		"-l", filepath.Join(c.dir, "postgres.log"),
		"-o", c.settings+" -p "+strconv.Itoa(c.port))
	if err == nil {
		c.killed = false
	}
	return err
}

// Crash stops the server as a crash would (an immediate shutdown): open
// connections are cut, and the next start recovers from the write-ahead
// log. The directory stays this process's; Restart starts it again. A
// Throwaway cluster loses its last commits this way.
func (c *Cluster) Crash(ctx context.Context) error {
	return c.run(ctx, "pg_ctl", "stop", "-w", "-m", "immediate", "-D", c.dataDir())
}

// Restart starts a server that Crash stopped, on the same port.
func (c *Cluster) Restart(ctx context.Context) error { return c.start(ctx) }

// initdb creates the data directory under a temporary name first, so that
// an interrupted initdb leaves nothing that looks like a cluster.
func (c *Cluster) initdb(ctx context.Context) error {
	tmp := c.dataDir() + ".init"
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("remove unfinished data dir: %w", err)
	}
	if err := c.run(ctx, "initdb", "-D", tmp, "-U", "postgres", "--auth=trust",
		"--no-sync", "--encoding=UTF8", "--locale=C"); err != nil {
		return err
	}
	if err := os.Rename(tmp, c.dataDir()); err != nil {
		return fmt.Errorf("move new data dir in place: %w", err)
	}
	return nil
}

// lockDir takes an exclusive lock on dir for this process's lifetime, so
// that a second `minizon dev` on the same directory cannot stop the first
// one's server.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open cluster lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s is in use by another process (is another minizon dev running?)", dir)
		}
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	return f, nil
}

// URL is the connection string for a database of this cluster.
func (c *Cluster) URL(database string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.port, database)
}

// CreateDatabase creates database name on this cluster unless it exists,
// optionally as a copy of template.
func (c *Cluster) CreateDatabase(ctx context.Context, name, template string) error {
	return CreateDatabase(ctx, c.URL("postgres"), name, template)
}

// CreateDatabase creates database name on the server that serverURL points
// to, unless it exists, optionally as a copy of template.
func CreateDatabase(ctx context.Context, serverURL, name, template string) error {
	// pgxpool's parser accepts (and strips) pool settings such as
	// pool_max_conns, which the server itself would refuse.
	cfg, err := pgxpool.ParseConfig(serverURL)
	if err != nil {
		return fmt.Errorf("parse database URL: %w", err)
	}
	conn, err := pgx.ConnectConfig(ctx, cfg.ConnConfig)
	if err != nil {
		return fmt.Errorf("connect to postgres server: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return fmt.Errorf("look up database %s: %w", name, err)
	}
	if exists {
		return nil
	}
	sql := "CREATE DATABASE " + pgx.Identifier{name}.Sanitize()
	if template != "" {
		sql += " TEMPLATE " + pgx.Identifier{template}.Sanitize()
	}
	if _, err := conn.Exec(ctx, sql); err != nil {
		var pgErr *pgconn.PgError
		// Another process created it between the check and now.
		if errors.As(err, &pgErr) && pgErr.Code == "42P04" {
			return nil
		}
		return fmt.Errorf("create database %s: %w", name, err)
	}
	return nil
}

// DatabaseURL returns serverURL with its database replaced by name.
func DatabaseURL(serverURL, name string) (string, error) {
	u, err := url.Parse(serverURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", fmt.Errorf("database URL %s: want postgres://user@host:port/db", Redacted(serverURL))
	}
	u.Path = "/" + name
	return u.String(), nil
}

// Redacted is serverURL fit for messages and banners: scheme, user, host and
// database only, never a password (userinfo or query) or the rest of the
// query.
func Redacted(serverURL string) string {
	u, err := url.Parse(serverURL)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return "(not a URL)"
	}
	r := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}
	if u.User != nil {
		r.User = url.User(u.User.Username())
	}
	return r.String()
}

// Stop shuts the server down, aborting open connections, and releases the
// directory. After Kill there is no server left to stop.
func (c *Cluster) Stop() error {
	defer c.lock.Close()
	if c.killed {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return c.run(ctx, "pg_ctl", "stop", "-w", "-m", "fast", "-D", c.dataDir())
}

// DataDir is the server's data directory; its postmaster.pid names the
// server process.
func (c *Cluster) DataDir() string { return c.dataDir() }

// Bin is the path of one of the installation's programs (pgbench, psql),
// from the same installation as the running server.
func (c *Cluster) Bin(name string) string { return filepath.Join(c.bin, name) }

func (c *Cluster) dataDir() string { return filepath.Join(c.dir, "data") }
func (c *Cluster) sockDir() string { return filepath.Join(c.dir, "sock") }

func (c *Cluster) run(ctx context.Context, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, filepath.Join(c.bin, name), args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Dir = c.dir
	// pg_ctl's children may hold our pipes; do not wait on them forever.
	cmd.WaitDelay = 10 * time.Second
	if c.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	}
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %v: %w\n%s", name, args, err, out.String())
	}
	return nil
}

// findBinaries finds the directory holding initdb and pg_ctl: on PATH, or
// the newest Debian installation under /usr/lib/postgresql.
func findBinaries() (string, error) {
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		if resolved, err := filepath.EvalSymlinks(p); err == nil {
			p = resolved
		}
		dir := filepath.Dir(p)
		if _, err := os.Stat(filepath.Join(dir, "initdb")); err == nil {
			return dir, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "pg_ctl")); err == nil {
			return d, nil
		}
	}
	return "", errors.New("PostgreSQL server binaries (initdb, pg_ctl) not found: install Debian's postgresql package or set DATABASE_URL")
}

func versionOf(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

func postgresUser() (*syscall.Credential, error) {
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("PostgreSQL refuses to run as root and there is no postgres user to run it as: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// reachable checks that the postgres user can traverse every parent of dir,
// which initdb otherwise reports only as "permission denied".
func reachable(dir string, cred *syscall.Credential) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	for d := filepath.Dir(abs); ; d = filepath.Dir(d) {
		var st syscall.Stat_t
		if err := syscall.Stat(d, &st); err != nil {
			return fmt.Errorf("stat %s: %w", d, err)
		}
		ok := st.Mode&0o001 != 0 ||
			st.Uid == cred.Uid && st.Mode&0o100 != 0 ||
			st.Gid == cred.Gid && st.Mode&0o010 != 0
		if !ok {
			return fmt.Errorf("PostgreSQL runs as the postgres user, which cannot enter %s: choose a data directory elsewhere (MINIZON_DATA_DIR) or allow it (chmod o+x %s)", d, d)
		}
		if d == "/" || d == filepath.Dir(d) {
			return nil
		}
	}
}

func chownTree(dir string, uid, gid int) error {
	return filepath.WalkDir(dir, func(p string, _ os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
