package pgcluster

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// reachableTempDir is a t.TempDir the postgres user can enter.
func reachableTempDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for d := dir; d != os.TempDir() && d != "/" && d != "."; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestSecondStartReusesDataAndRecoversFromAnOrphan is what `minizon dev`
// relies on: while one process owns the directory a second is refused; once
// the owner died without stopping its server, the next start takes over the
// cluster and its data.
func TestSecondStartReusesDataAndRecoversFromAnOrphan(t *testing.T) {
	ctx := t.Context()
	dir := filepath.Join(reachableTempDir(t), "pg")
	// Debris of an initdb that was interrupted must not matter.
	if err := os.MkdirAll(filepath.Join(dir, "data.init", "base"), 0o755); err != nil {
		t.Fatal(err)
	}
	first, err := Start(ctx, Options{Dir: dir, Throwaway: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := first.CreateDatabase(ctx, "loms", ""); err != nil {
		t.Fatal(err)
	}
	// The installation's other programs are beside the running server's.
	if out, err := exec.Command(first.Bin("pgbench"), "--version").CombinedOutput(); err != nil || !strings.Contains(string(out), "pgbench") {
		t.Fatalf("Bin(pgbench): %v %s", err, out)
	}
	if err := first.CreateDatabase(ctx, "loms", ""); err != nil {
		t.Fatalf("creating an existing database must be a no-op: %v", err)
	}
	if err := execSQL(t, first.URL("loms")+"&pool_max_conns=3", "CREATE TABLE kept (v int); INSERT INTO kept VALUES (42)"); err != nil {
		t.Fatal(err)
	}

	if _, err := Start(ctx, Options{Dir: dir, Throwaway: true}); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("a second start while the first runs: %v, want refused", err)
	}
	if err := execSQL(t, first.URL("loms"), "SELECT 1"); err != nil {
		t.Fatal("the refused start disturbed the running server")
	}

	// The owner dies without stopping its server: its lock goes with it.
	first.lock.Close()
	second, err := Start(ctx, Options{Dir: dir, Throwaway: true})
	if err != nil {
		t.Fatalf("start over an orphaned server: %v", err)
	}
	t.Cleanup(func() {
		if err := second.Stop(); err != nil {
			t.Error(err)
		}
	})
	conn, err := pgx.Connect(ctx, second.URL("loms"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var v int
	if err := conn.QueryRow(ctx, "SELECT v FROM kept").Scan(&v); err != nil || v != 42 {
		t.Fatalf("data after restart: %v %v", v, err)
	}
}

func TestDatabaseURL(t *testing.T) {
	got, err := DatabaseURL("postgres://u:p@db:5432/postgres?sslmode=disable&pool_max_conns=9", "loms")
	if err != nil || got != "postgres://u:p@db:5432/loms?sslmode=disable&pool_max_conns=9" {
		t.Fatalf("got %q %v", got, err)
	}
	if _, err := DatabaseURL("mysql://db/x", "loms"); err == nil {
		t.Fatal("a non-postgres URL must be refused")
	}
}

func TestUnreachableDirectoryIsExplained(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("only root hands the server to the postgres user")
	}
	locked := t.TempDir()
	if err := os.Chmod(locked, 0o700); err != nil {
		t.Fatal(err)
	}
	_, err := Start(t.Context(), Options{Dir: filepath.Join(locked, "pg")})
	if err == nil || !strings.Contains(err.Error(), "cannot enter "+locked) {
		t.Fatalf("error %v, want one naming %s", err, locked)
	}
}

func execSQL(t *testing.T, url, sql string) error {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.ConnectConfig(t.Context(), cfg.ConnConfig)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(t.Context(), sql)
	return err
}

// TestCrashAndRestartKeepTheAddressAndTheData is what the fault tests rely
// on: a crashed server refuses connections, and once restarted answers on
// the same URL with every committed row. (A Throwaway cluster would lose
// the last commits: synchronous_commit is off there.)
func TestCrashAndRestartKeepTheAddressAndTheData(t *testing.T) {
	ctx := t.Context()
	c, err := Start(ctx, Options{Dir: filepath.Join(reachableTempDir(t), "pg")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Stop() })
	if err := execSQL(t, c.URL("postgres"), "CREATE TABLE kept (v int); INSERT INTO kept VALUES (42)"); err != nil {
		t.Fatal(err)
	}
	if err := c.Crash(ctx); err != nil {
		t.Fatal(err)
	}
	if err := execSQL(t, c.URL("postgres"), "SELECT 1"); err == nil {
		t.Fatal("a crashed server answered")
	}
	if err := c.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if err := execSQL(t, c.URL("postgres"), "DO $$ BEGIN IF (SELECT v FROM kept) <> 42 THEN RAISE 'lost'; END IF; END $$"); err != nil {
		t.Fatalf("after the restart: %v", err)
	}
}
