package pgcluster_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/minizon/minizon/internal/pgcluster"
)

// TestRestartKeepsDataAndSurvivesAnOrphanedServer is what `minizon dev`
// relies on: a second start on the same directory reuses the cluster and
// its data, even when the previous process died without stopping it.
func TestRestartKeepsDataAndSurvivesAnOrphanedServer(t *testing.T) {
	ctx := t.Context()
	dir := filepath.Join(t.TempDir(), "pg")
	// The server may run as the postgres user: t.TempDir's folders must be
	// reachable.
	for d := filepath.Dir(dir); d != os.TempDir(); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	first, err := pgcluster.Start(ctx, pgcluster.Options{Dir: dir, Fast: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := first.CreateDatabase(ctx, "loms", ""); err != nil {
		t.Fatal(err)
	}
	if err := first.CreateDatabase(ctx, "loms", ""); err != nil {
		t.Fatalf("creating an existing database must be a no-op: %v", err)
	}
	exec(t, first.URL("loms"), "CREATE TABLE kept (v int); INSERT INTO kept VALUES (42)")

	// The first server is never stopped, as after a SIGKILL of its owner.
	second, err := pgcluster.Start(ctx, pgcluster.Options{Dir: dir, Fast: true})
	if err != nil {
		t.Fatalf("start over an orphaned server: %v", err)
	}
	t.Cleanup(func() {
		if err := second.Stop(); err != nil {
			t.Error(err)
		}
	})
	var v int
	conn, err := pgx.Connect(ctx, second.URL("loms"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if err := conn.QueryRow(ctx, "SELECT v FROM kept").Scan(&v); err != nil || v != 42 {
		t.Fatalf("data after restart: %v %v", v, err)
	}
}

func TestDatabaseURL(t *testing.T) {
	got, err := pgcluster.DatabaseURL("postgres://u:p@db:5432/postgres?sslmode=disable", "loms")
	if err != nil || got != "postgres://u:p@db:5432/loms?sslmode=disable" {
		t.Fatalf("got %q %v", got, err)
	}
	if _, err := pgcluster.DatabaseURL("mysql://db/x", "loms"); err == nil {
		t.Fatal("a non-postgres URL must be refused")
	}
}

func exec(t *testing.T, url, sql string) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(t.Context(), sql); err != nil {
		t.Fatal(err)
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
	_, err := pgcluster.Start(t.Context(), pgcluster.Options{Dir: filepath.Join(locked, "pg")})
	if err == nil || !strings.Contains(err.Error(), "cannot enter "+locked) {
		t.Fatalf("error %v, want one naming %s", err, locked)
	}
}
