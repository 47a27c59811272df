package pgcluster

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/minizon/minizon/internal/pgpool"
)

// TestSecretsDatabaseURLErrorHidesPassword: DatabaseURL is handed the
// operator's DATABASE_URL in `minizon dev`, and pgx accepts forms that it
// refuses (key=value); its error must not quote a password.
func TestSecretsDatabaseURLErrorHidesPassword(t *testing.T) {
	for _, serverURL := range []string{
		"host=db user=u password=KvSecret-41d9 dbname=postgres",
		"mysql://u:UrlSecret-41d9@db/x",
		"postgres://u:Pct%zzSecret-41d9@db/x",
	} {
		_, err := DatabaseURL(serverURL, "loms")
		if err == nil {
			t.Fatalf("%d bytes: no error", len(serverURL))
		}
		if strings.Contains(err.Error(), "Secret-41d9") {
			t.Errorf("the error quotes the password: %v", err)
		}
	}
}

// TestSecretsDriverErrorsHidePasswords: what a service reports when its
// DATABASE_URL is malformed or its server unreachable (pgpool.Open: goose's
// migration, then the pool; pgx directly) never holds the URL's password.
func TestSecretsDriverErrorsHidePasswords(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	const secret = "ClosedSecret-9e27"
	for _, url := range []string{
		"postgres://u:" + secret + "@" + closed + "/x?sslmode=disable&connect_timeout=2",
		"postgres://u@" + closed + "/x?sslmode=disable&connect_timeout=2&password=" + secret,
		"host=127.0.0.1 port=" + strings.Split(closed, ":")[1] + " user=u password=" + secret + " sslmode=disable connect_timeout=2",
		// Malformed: the parser gives up, its error quotes the string.
		"postgres://u:" + secret + "@db:notaport/x",
		"postgres://u:" + secret + "%zz@db/x",
		"postgres://u:" + secret + "@db/x?sslmode=bogus",
		"postgres://u:" + secret + " x@db/x",
		"host=db password=" + secret + " port=abc",
		"host=db password='" + secret + " quoted' port=abc",
	} {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		_, err := pgpool.Open(ctx, "product", url)
		cancel()
		if err == nil {
			t.Fatalf("pgpool.Open of a closed port or malformed URL succeeded")
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("pgpool.Open: the error holds the password: %v", err)
		}
		t.Logf("pgpool.Open: %v", err)
		if cfg, err := pgxpool.ParseConfig(url); err != nil {
			if strings.Contains(err.Error(), secret) {
				t.Errorf("ParseConfig: the error holds the password: %v", err)
			}
		} else {
			_, err := pgx.ConnectConfig(t.Context(), cfg.ConnConfig)
			if err == nil || strings.Contains(err.Error(), secret) {
				t.Errorf("Connect: the error holds the password: %v", err)
			}
		}
	}
}

// TestSecretsOnARealServer runs one cluster for what needs a live server:
// database names with quotes and SQL in them are identifiers and nothing
// else, and a refused password is not repeated in the error.
func TestSecretsOnARealServer(t *testing.T) {
	ctx := t.Context()
	c, err := Start(ctx, Options{Dir: filepath.Join(reachableTempDir(t), "pg"), Throwaway: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Error(err)
		}
	})

	t.Run("database names are quoted", func(t *testing.T) {
		hostile := []string{
			`evil"; DROP DATABASE postgres; --`,
			`a"b`,
			`with space`,
			`x" TEMPLATE template0 --`,
		}
		for _, name := range hostile {
			if err := c.CreateDatabase(ctx, name, ""); err != nil {
				t.Fatalf("create %q: %v", name, err)
			}
		}
		// A hostile template name is a name too.
		if err := c.CreateDatabase(ctx, "copy", hostile[1]); err != nil {
			t.Fatalf("create from template %q: %v", hostile[1], err)
		}
		conn, err := pgx.Connect(ctx, c.URL("postgres"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.WithoutCancel(ctx))
		rows, err := conn.Query(ctx, "SELECT datname FROM pg_database")
		if err != nil {
			t.Fatal(err)
		}
		names, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range append(hostile, "postgres", "copy") {
			if !slices.Contains(names, want) {
				t.Errorf("database %q missing; have %q", want, names)
			}
		}
	})

	t.Run("a refused password is not repeated", func(t *testing.T) {
		// Trust stays for the postgres user; role leaky must give its
		// password over TCP.
		hba := "local all all trust\nhost all postgres 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 scram-sha-256\n"
		if err := os.WriteFile(filepath.Join(c.dataDir(), "pg_hba.conf"), []byte(hba), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := c.run(ctx, "pg_ctl", "reload", "-D", c.dataDir()); err != nil {
			t.Fatal(err)
		}
		conn, err := pgx.Connect(ctx, c.URL("postgres"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.WithoutCancel(ctx))
		if _, err := conn.Exec(ctx, "CREATE ROLE leaky LOGIN PASSWORD 'RightSecret-c3a1'"); err != nil {
			t.Fatal(err)
		}
		url := func(pw string) string {
			return fmt.Sprintf("postgres://leaky:%s@127.0.0.1:%d/postgres?sslmode=disable", pw, c.port)
		}
		// The reload is asynchronous: wait until the wrong password is
		// refused, which also shows that passwords are checked at all. The
		// limit only keeps a broken build from hanging.
		var refused error
		for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			conn, err := pgx.Connect(ctx, url("WrongSecret-c3a1"))
			if err != nil {
				refused = err
				break
			}
			conn.Close(ctx)
		}
		if refused == nil || !strings.Contains(refused.Error(), "password authentication failed") {
			t.Fatalf("wrong password: %v, want refused", refused)
		}
		good, err := pgx.Connect(ctx, url("RightSecret-c3a1"))
		if err != nil {
			t.Fatalf("right password: %v", err)
		}
		good.Close(ctx)

		_, err = pgpool.Open(ctx, "product", url("WrongSecret-c3a1"))
		for _, err := range []error{refused, err} {
			if err == nil || strings.Contains(err.Error(), "Secret-c3a1") {
				t.Errorf("the error holds a password: %v", err)
			}
		}
		t.Logf("pgx: %v", refused)
		t.Logf("pgpool.Open: %v", err)
	})
}

// TestSecretsDataDirIsNotShellCode: pg_ctl starts the server through
// /bin/sh, with -D and -l inside double quotes and -o not quoted at all, so
// a data directory (MINIZON_DATA_DIR) holding $(...) ran that command as
// the server's user. Start must refuse such a directory before it runs
// anything.
func TestSecretsDataDirIsNotShellCode(t *testing.T) {
	base := reachableTempDir(t)
	// Writable by the postgres user too, so that nothing but quoting keeps
	// the marker from being created.
	shared := filepath.Join(base, "shared")
	if err := os.Mkdir(shared, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(shared, 0o777); err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(shared, "marker")
	c, err := Start(t.Context(), Options{Dir: filepath.Join(base, "pg $(touch "+marker+")"), Throwaway: true})
	if err == nil {
		_ = c.Stop()
	}
	if _, statErr := os.Stat(marker); statErr == nil {
		t.Fatalf("the data directory's name ran as a command (start: %v)", err)
	}
	if err == nil {
		t.Fatal("a data directory with shell syntax in its name was accepted")
	}
}
