package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSecretsDevBannerHidesDatabasePassword: `minizon dev` with DATABASE_URL
// prints the server it uses; the terminal, and whatever records it, must not
// get the password.
func TestSecretsDevBannerHidesDatabasePassword(t *testing.T) {
	var out bytes.Buffer
	printBanner(&out, "http://127.0.0.1:8080", []string{"127.0.0.1:9092"},
		"postgres://minizon:BannerSecret-2e6b@db:5432/postgres?sslmode=disable&password=BannerSecret-2e6b")
	if strings.Contains(out.String(), "BannerSecret-2e6b") {
		t.Fatalf("the banner holds the password:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "db:5432") {
		t.Fatalf("the banner does not name the server:\n%s", out.String())
	}
}

// TestSecretsStartupFailuresHideSecrets starts every command with secrets in
// every variable that holds one and a database nobody answers at: the
// returned error, the output and the log name what failed, never a secret.
func TestSecretsStartupFailuresHideSecrets(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := ln.Addr().String()
	ln.Close()
	const (
		dbSecret      = "DbSecret-81fa"
		tokenSecret   = "TokenSecret-81fa"
		webhookSecret = "HookSecret-81fa"
	)
	port := strings.Split(down, ":")[1]
	csv := filepath.Join(t.TempDir(), "catalog.csv")
	if err := os.WriteFile(csv, []byte("sku,name,price\n1,Kettle,100\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// DATABASE_URL as a URL, with the password in the query, as key=value
	// pairs, and malformed so that the driver's parser gives up.
	for _, dbURL := range []string{
		"postgres://minizon:" + dbSecret + "@" + down + "/postgres?sslmode=disable&connect_timeout=2",
		"postgres://minizon@" + down + "/postgres?sslmode=disable&connect_timeout=2&password=" + dbSecret,
		"host=127.0.0.1 port=" + port + " user=minizon password=" + dbSecret + " dbname=postgres sslmode=disable connect_timeout=2",
		"postgres://minizon:" + dbSecret + "@127.0.0.1:notaport/postgres",
	} {
		env := map[string]string{
			"DATABASE_URL":       dbURL,
			"PRODUCT_TOKENS":     tokenSecret + "-a," + tokenSecret + "-b",
			"PRODUCT_TOKEN":      tokenSecret + "-a",
			"NOTIFY_WEBHOOK_URL": "https://hook:" + webhookSecret + "@hooks.example/notify?token=" + webhookSecret,
			"KAFKA_BROKERS":      down,
			"LOMS_ADDR":          down,
			"PRODUCT_ADDR":       down,
			"MINIZON_ADDR":       "127.0.0.1:0",
			"MINIZON_DATA_DIR":   t.TempDir(),
		}
		for k, v := range env {
			t.Setenv(k, v)
		}
		for _, args := range [][]string{{"loms"}, {"checkout"}, {"product"}, {"notifications"}, {"dev"},
			{"product", "import", csv}} {
			var out, logs bytes.Buffer
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			err := runLogging(ctx, args, &out, &logs)
			cancel()
			if err == nil {
				t.Fatalf("%v started against a database nobody answers at", args)
			}
			all := err.Error() + "\n" + out.String() + "\n" + logs.String()
			for _, s := range []string{dbSecret, tokenSecret, webhookSecret} {
				if strings.Contains(all, s) {
					t.Errorf("%v: a secret is in what it reported:\n%s", args, all)
				}
			}
			t.Logf("%v: %v", args, err)
		}
	}
}
