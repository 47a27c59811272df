// Package pgtest gives tests real PostgreSQL databases: one throwaway
// cluster per test binary, one migrated template per schema, and a fresh
// database per test copied from it.
package pgtest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/goleak"

	"github.com/minizon/minizon/internal/pgcluster"
)

// Cluster is the test binary's PostgreSQL server.
type Cluster struct {
	*pgcluster.Cluster
	mu        sync.Mutex
	templates map[string]error
	seq       atomic.Int64
}

// Main starts a cluster, stores it in *c, runs the tests, checks that no
// goroutine outlived them, and stops the cluster. Call it from TestMain: `func TestMain(m *testing.M) { pgtest.Main(m, &db) }`.
func Main(m *testing.M, c **Cluster) {
	dir, err := os.MkdirTemp("", "minizon-pgtest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "pgtest:", err)
		os.Exit(1)
	}
	pc, err := pgcluster.Start(context.Background(), pgcluster.Options{Dir: dir, Throwaway: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, "pgtest:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	if err := watchdog(pc.DataDir(), dir); err != nil {
		fmt.Fprintln(os.Stderr, "pgtest:", err)
	}
	*c = &Cluster{Cluster: pc, templates: map[string]error{}}
	code := m.Run()
	if code == 0 {
		// Every test must stop what it started: pools, relays, servers.
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "pgtest: leaked goroutines:", err)
			code = 1
		}
	}
	if err := pc.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "pgtest:", err)
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// Migrate brings a new database's schema up to date.
type Migrate func(ctx context.Context, url string) error

// NewDatabase creates an empty database for this test, copied from a
// template that migrate was applied to once per test binary and template
// name, and returns its URL. The database is left behind for inspection;
// the cluster goes away with the test binary.
func (c *Cluster) NewDatabase(t testing.TB, template string, migrate Migrate) string {
	t.Helper()
	ctx := t.Context()
	if err := c.template(ctx, template, migrate); err != nil {
		t.Fatalf("template %s: %v", template, err)
	}
	name := fmt.Sprintf("%s_%s_%d", template, sanitize(t.Name()), c.seq.Add(1))
	if len(name) > 63 {
		name = fmt.Sprintf("%s_%d", template, c.seq.Add(1))
	}
	// CREATE DATABASE ... TEMPLATE fails while another session is connected
	// to the template; nobody else connects to it, but serialise anyway.
	c.mu.Lock()
	err := c.CreateDatabase(ctx, name, template)
	c.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	return c.URL(name)
}

// NewPool is NewDatabase plus a pool closed when the test ends.
func (c *Cluster) NewPool(t testing.TB, template string, migrate Migrate) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(t.Context(), c.NewDatabase(t, template, migrate))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func (c *Cluster) template(ctx context.Context, name string, migrate Migrate) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err, done := c.templates[name]; done {
		return err
	}
	err := c.CreateDatabase(ctx, name, "")
	if err == nil {
		err = migrate(ctx, c.URL(name))
	}
	c.templates[name] = err
	return err
}

// watchdog stops the server and removes dir when this test binary is gone,
// however it went: a test timeout or a panic skips Main's clean-up, and the
// server would otherwise outlive the run. It runs in its own session so that
// an interrupt of `go test` does not take it down first.
func watchdog(dataDir, dir string) error {
	script := fmt.Sprintf(`while kill -0 %d 2>/dev/null; do sleep 1; done
pid=$(head -n 1 %q/postmaster.pid 2>/dev/null) && kill -QUIT "$pid" 2>/dev/null
sleep 1
rm -rf %q`, os.Getpid(), dataDir, dir)
	cmd := exec.Command("sh", "-c", script)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start watchdog: %w", err)
	}
	// Not waited for: it must outlive this process, and a goroutine
	// blocked in Wait would count as leaked.
	return nil
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		if r >= 'A' && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return '_'
	}, s)
}

// ReachableTempDir is a t.TempDir that the postgres user can enter: a
// cluster run as that user (when the tests run as root) needs every parent
// of its directory traversable.
func ReachableTempDir(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	for d := dir; d != os.TempDir() && d != "/" && d != "."; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}
