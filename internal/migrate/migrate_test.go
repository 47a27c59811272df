package migrate_test

import (
	"context"
	"io/fs"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/minizon/minizon/internal/migrate"
	"github.com/minizon/minizon/internal/pgtest"
	"github.com/minizon/minizon/sql"
)

var pg *pgtest.Cluster

func TestMain(m *testing.M) { pgtest.Main(m, &pg) }

// TestReplicasMigrateAtOnce: several replicas starting together all succeed
// and the schema is applied once.
func TestReplicasMigrateAtOnce(t *testing.T) {
	url := pg.NewDatabase(t, "empty", func(context.Context, string) error { return nil })
	var wg sync.WaitGroup
	errs := make([]error, 6)
	for i := range errs {
		wg.Go(func() { errs[i] = migrate.Up(t.Context(), url+"&pool_max_conns=2", "loms") })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("replica %d: %v", i, err)
		}
	}
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var applied, tables int
	if err := conn.QueryRow(t.Context(), `SELECT
		(SELECT count(*) FROM goose_db_version WHERE version_id > 0 AND is_applied),
		(SELECT count(*) FROM information_schema.tables WHERE table_name IN ('orders', 'stocks', 'reservations', 'outbox'))`).
		Scan(&applied, &tables); err != nil {
		t.Fatal(err)
	}
	migrations, err := sql.Migrations("loms")
	if err != nil {
		t.Fatal(err)
	}
	files, err := fs.Glob(migrations, "*.sql")
	if err != nil {
		t.Fatal(err)
	}
	// Each migration once, however many replicas raced to apply it.
	if applied != len(files) || tables != 4 {
		t.Fatalf("%d migrations recorded, %d tables: want %d and 4", applied, tables, len(files))
	}
}

func TestUnknownServiceHasNoMigrations(t *testing.T) {
	url := pg.NewDatabase(t, "empty", func(context.Context, string) error { return nil })
	if err := migrate.Up(t.Context(), url, "warehouse9"); err == nil {
		t.Fatal("migrating an unknown service must fail")
	}
}
