package store_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/minizon/minizon/services/loms/store/internal/db"
)

// createStatements are CreateOrder's statements in the order the store runs
// them (createBatch), between its BEGIN and COMMIT.
var createStatements = []struct{ name, sql string }{
	{"InsertOrders", db.InsertOrders},
	{"LockStocks", db.LockStocks},
	{"InsertOrderItems", db.InsertOrderItems},
	{"ReserveStocks", db.ReserveStocks},
	{"InsertReservations", db.InsertReservations},
	{"UpdateOrderStatuses", db.UpdateOrderStatuses},
	{"InsertOutbox", db.InsertOutbox},
}

// The harness's pgbench scripts (bench/pgbench) are the yardstick LOMS is
// measured against: they must run LOMS's own CreateOrder statements, in its
// order, with the parameters filled in, or the comparison drifts.
func TestPgbenchScriptsRunTheStoresStatements(t *testing.T) {
	t.Parallel()
	for _, script := range []string{"create_order.sql", "flash_sale.sql"} {
		t.Run(script, func(t *testing.T) {
			t.Parallel()
			b, err := os.ReadFile(filepath.Join("..", "..", "..", "bench", "pgbench", script))
			if err != nil {
				t.Fatal(err)
			}
			stmts := scriptStatements(string(b))
			if len(stmts) != len(createStatements)+2 || stmts[0] != "BEGIN ISOLATION LEVEL READ COMMITTED" ||
				stmts[len(stmts)-1] != "COMMIT" {
				t.Fatalf("%d statements, want BEGIN, the store's %d and COMMIT:\n%s",
					len(stmts), len(createStatements), strings.Join(stmts, "\n---\n"))
			}
			for i, q := range createStatements {
				want := storeStatement(q.sql)
				if got := stmts[i+1]; !statementPattern(want).MatchString(got) {
					t.Errorf("statement %d is not the store's %s:\nscript: %s\nstore:  %s", i+2, q.name, got, want)
				}
			}
		})
	}
}

// scriptStatements splits a pgbench script into its SQL statements, without
// comments, meta-commands and the closing semicolons.
func scriptStatements(script string) []string {
	var stmts []string
	var cur []string
	for _, line := range strings.Split(script, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "--") || strings.HasPrefix(line, `\`) {
			continue
		}
		if s, ok := strings.CutSuffix(line, ";"); ok {
			stmts = append(stmts, strings.Join(append(cur, s), " "))
			cur = nil
			continue
		}
		cur = append(cur, line)
	}
	return stmts
}

// storeStatement is sqlc's query text without its name comment.
func storeStatement(sql string) string {
	var lines []string
	for _, line := range strings.Split(sql, "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "--") {
			lines = append(lines, line)
		}
	}
	return strings.TrimSuffix(strings.Join(lines, " "), ";")
}

// statementPattern matches want with each $N parameter filled in by any
// expression and any run of white space for its white space.
func statementPattern(want string) *regexp.Regexp {
	p := regexp.QuoteMeta(want)
	p = regexp.MustCompile(`\\\$[0-9]+`).ReplaceAllString(p, `(.+?)`)
	p = regexp.MustCompile(`\s+`).ReplaceAllString(p, `\s+`)
	return regexp.MustCompile(`^` + p + `$`)
}
