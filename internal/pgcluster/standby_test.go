package pgcluster

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// primaryAndStandby starts a durable primary (synchronous commit on, as in
// the fault tests) holding table kept, and a standby of it.
func primaryAndStandby(t *testing.T) (primary, standby *Cluster) {
	t.Helper()
	ctx := t.Context()
	dir := reachableTempDir(t)
	primary, err := Start(ctx, Options{Dir: filepath.Join(dir, "primary")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = primary.Stop() })
	if err := execSQL(t, primary.URL("postgres"), "CREATE TABLE kept (v int); INSERT INTO kept VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	standby, err = primary.StartStandby(ctx, Options{Dir: filepath.Join(dir, "standby")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = standby.Stop() })
	if standby.port == primary.port {
		t.Fatalf("standby and primary both on port %d", standby.port)
	}
	return primary, standby
}

// TestStandbyFollowsAndTakesOverWhenThePrimaryIsLost is what the failover
// fault tests rely on: a standby holds the primary's data and follows its
// writes, refusing its own; a commit acknowledged while it is synchronous
// survives the primary's sudden loss; once promoted it takes writes, and a
// client with both addresses finds it.
func TestStandbyFollowsAndTakesOverWhenThePrimaryIsLost(t *testing.T) {
	ctx := t.Context()
	primary, standby := primaryAndStandby(t)
	failover := FailoverURL("postgres", primary, standby)

	// The copy holds what the primary had; later writes follow.
	if got := values(t, standby.URL("postgres")); len(got) != 1 || got[0] != 1 {
		t.Fatalf("standby holds %v, want [1]", got)
	}
	if err := execSQL(t, failover, "INSERT INTO kept VALUES (2)"); err != nil {
		t.Fatal(err)
	}
	if err := waitUntil(t, func() bool { return len(values(t, standby.URL("postgres"))) == 2 }); err != nil {
		t.Fatalf("the standby did not receive a later write: %v", err)
	}
	var pgErr *pgconn.PgError
	if err := execSQL(t, standby.URL("postgres"), "INSERT INTO kept VALUES (-1)"); !errors.As(err, &pgErr) || pgErr.Code != "25006" {
		t.Fatalf("a write on the standby: %v, want read_only_sql_transaction", err)
	}

	if err := primary.SetSynchronous(ctx, "*"); err != nil {
		t.Fatal(err)
	}
	// Acknowledged only once the standby flushed it.
	if err := execSQL(t, failover, "INSERT INTO kept VALUES (3)"); err != nil {
		t.Fatal(err)
	}
	pids := serverPIDs(t, primary)
	if err := primary.Kill(); err != nil {
		t.Fatal(err)
	}
	for _, pid := range pids {
		if alive(pid) {
			t.Errorf("process %d of the killed server still runs", pid)
		}
	}
	if conn, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(primary.port)); err == nil {
		conn.Close()
		t.Fatal("the killed server's port still accepts connections")
	}
	if err := execSQL(t, failover, "SELECT 1"); err == nil {
		t.Fatal("a read-write session before the promotion: only a read-only standby is left")
	}

	if err := standby.Promote(ctx); err != nil {
		t.Fatal(err)
	}
	if err := execSQL(t, failover, "INSERT INTO kept VALUES (4)"); err != nil {
		t.Fatalf("a write through both addresses after the promotion: %v", err)
	}
	if got := values(t, standby.URL("postgres")); len(got) != 4 || got[2] != 3 {
		t.Fatalf("the promoted standby holds %v, want [1 2 3 4]", got)
	}
	if err := primary.Stop(); err != nil {
		t.Fatalf("stop after kill: %v", err)
	}
}

// TestSynchronousCommitsWaitForAStandby: with SetSynchronous a commit is
// not acknowledged while no standby has it, and "" releases it.
func TestSynchronousCommitsWaitForAStandby(t *testing.T) {
	ctx := t.Context()
	primary, standby := primaryAndStandby(t)
	if err := primary.SetSynchronous(ctx, "*"); err != nil {
		t.Fatal(err)
	}
	if err := standby.Kill(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- execSQL(t, primary.URL("postgres"), "INSERT INTO kept VALUES (2)") }()
	// Seen from the server, not from the clock: the commit waits for
	// synchronous replication.
	if err := waitUntil(t, func() bool {
		var waiting bool
		err := query(t, primary.URL("postgres"), "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE wait_event = 'SyncRep')", &waiting)
		return err == nil && waiting
	}); err != nil {
		t.Fatalf("no commit waits for a standby: %v", err)
	}
	select {
	case err := <-done:
		t.Fatalf("a commit returned with no standby to wait for: %v", err)
	default:
	}
	if err := primary.SetSynchronous(ctx, ""); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("the waiting commit after replication became asynchronous: %v", err)
	}
	if got := values(t, primary.URL("postgres")); len(got) != 2 {
		t.Fatalf("primary holds %v, want [1 2]", got)
	}
}

// values is the contents of table kept, in order.
func values(t *testing.T, url string) []int {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(t.Context(), "SELECT v FROM kept ORDER BY v")
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func query(t *testing.T, url, sql string, dest ...any) error {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	return conn.QueryRow(t.Context(), sql).Scan(dest...)
}

// serverPIDs are the postmaster and the processes it started.
func serverPIDs(t *testing.T, c *Cluster) []int {
	t.Helper()
	pid, err := c.postmasterPID()
	if err != nil {
		t.Fatal(err)
	}
	kids, err := children(pid)
	if err != nil {
		t.Fatal(err)
	}
	// The postmaster, its checkpointer, walwriter, walsender and others.
	if len(kids) < 3 {
		t.Fatalf("postmaster %d has children %v", pid, kids)
	}
	return append(kids, pid)
}

// waitUntil polls cond for up to a minute.
func waitUntil(t *testing.T, cond func() bool) error {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !cond(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) || t.Context().Err() != nil {
			return errors.New("still not so after a minute")
		}
	}
	return nil
}

// TestStandbyStartedAgainCatchesUp: a stopped standby started again on its
// directory is a standby still, and receives what it missed.
func TestStandbyStartedAgainCatchesUp(t *testing.T) {
	ctx := t.Context()
	primary, standby := primaryAndStandby(t)
	if err := standby.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := execSQL(t, primary.URL("postgres"), "INSERT INTO kept VALUES (2)"); err != nil {
		t.Fatal(err)
	}
	again, err := primary.StartStandby(ctx, Options{Dir: standby.dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = again.Stop() })
	if err := waitUntil(t, func() bool { return len(values(t, again.URL("postgres"))) == 2 }); err != nil {
		t.Fatalf("the restarted standby did not receive what it missed: %v", err)
	}
	var recovering bool
	if err := query(t, again.URL("postgres"), "SELECT pg_is_in_recovery()", &recovering); err != nil || !recovering {
		t.Fatalf("the restarted standby in recovery: %v %v", recovering, err)
	}
}
