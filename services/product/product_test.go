package product_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/minizon/minizon/internal/envconf"
	"github.com/minizon/minizon/services/product"
	"github.com/minizon/minizon/services/product/catalog"
)

func TestReadConfig(t *testing.T) {
	t.Parallel()
	env := envconf.FromMap(map[string]string{
		"DATABASE_URL":   "postgres://db/product",
		"PRODUCT_TOKENS": " new-token , old-token,, ",
		"MINIZON_SEED":   "true",
	})
	cfg := product.ReadConfig(env)
	if err := env.Err(); err != nil {
		t.Fatal(err)
	}
	want := product.Config{DatabaseURL: "postgres://db/product", Tokens: []string{"new-token", "old-token"}, SeedDemo: true}
	if cfg.DatabaseURL != want.DatabaseURL || strings.Join(cfg.Tokens, "|") != "new-token|old-token" || !cfg.SeedDemo {
		t.Fatalf("got %+v, want %+v", cfg, want)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if cfg := product.ReadConfig(envconf.FromMap(nil)); cfg.SeedDemo || cfg.Tokens != nil {
		t.Fatalf("defaults %+v", cfg)
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		cfg  product.Config
		want []string // parts of the error; none for a valid config
	}{
		{"valid", product.Config{DatabaseURL: "postgres://x", Tokens: []string{"t"}}, nil},
		{"nothing set", product.Config{}, []string{"DATABASE_URL is required", "PRODUCT_TOKENS is required"}},
		{"empty token", product.Config{DatabaseURL: "postgres://x", Tokens: []string{"t", " "}}, []string{"token 2 is empty"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.cfg.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatal("valid, want an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func count(t *testing.T, url string) int {
	t.Helper()
	pool, err := pgxpool.New(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var n int
	if err := pool.QueryRow(t.Context(), "SELECT count(*) FROM products").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestImport(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	// A database nobody migrated yet: Import brings the schema up itself.
	url := pg.NewDatabase(t, "empty", func(ctx context.Context, url string) error { return nil })

	bad := writeFile(t, "bad.csv", "sku,name,price\n1,Lamp,10\n2,,20\n3,Mug,1.5\n4,Vase,40\n1,Lamp,10\n")
	var out strings.Builder
	err := product.Import(ctx, url, bad, &out)
	var ie *catalog.ImportError
	if !errors.As(err, &ie) {
		t.Fatalf("got %v, want an *ImportError", err)
	}
	for _, want := range []string{bad, "nothing imported", "3 bad lines", "line 3: name is empty", `line 4: price "1.5"`, "line 6: sku 1 already on line 2"} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("error %q does not say %q", err, want)
		}
	}
	if out.Len() != 0 {
		t.Fatalf("output %q for a failed import", out.String())
	}

	var b strings.Builder
	b.WriteString("SKU,Name,Price\n")
	for sku := 1; sku <= 1234; sku++ {
		fmt.Fprintf(&b, "%d,Product %d,%d\n", sku, sku, sku*10)
	}
	good := writeFile(t, "good.csv", b.String())
	out.Reset()
	if err := product.Import(ctx, url, good, &out); err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("imported 1234 products from %s (1234 new, 0 updated, 0 unchanged)\n", good); out.String() != want {
		t.Fatalf("output %q, want %q", out.String(), want)
	}

	again := writeFile(t, "again.csv", "1,Product 1,10\n2,Renamed,20\n3,Product 3,31\n5000,New,1\n")
	out.Reset()
	if err := product.Import(ctx, url, again, &out); err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("imported 4 products from %s (1 new, 2 updated, 1 unchanged)\n", again); out.String() != want {
		t.Fatalf("output %q, want %q", out.String(), want)
	}
	if n := count(t, url); n != 1235 {
		t.Fatalf("%d products stored, want 1235", n)
	}

	// A bad file is refused before anything is written.
	if err := product.Import(ctx, url, bad, &out); err == nil {
		t.Fatal("bad file imported")
	}
	if n := count(t, url); n != 1235 {
		t.Fatalf("%d products stored after a bad file, want 1235", n)
	}
	if err := product.Import(ctx, url, filepath.Join(t.TempDir(), "missing.csv"), &out); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
	if err := product.Import(ctx, "", good, &out); err == nil || !strings.Contains(err.Error(), "DATABASE_URL") {
		t.Fatalf("no database: %v", err)
	}
}
