package main

import (
	"io"
	"strings"
	"testing"
)

func TestLomsRefusesToStartWithoutItsDependencies(t *testing.T) {
	t.Setenv("DATABASE_URL", "")
	t.Setenv("KAFKA_BROKERS", "")
	t.Setenv("LOMS_PAYMENT_TIMEOUT", "soon")
	t.Setenv("MINIZON_LOG_LEVEL", "loud")
	err := run(t.Context(), []string{"loms"}, io.Discard)
	if err == nil {
		t.Fatal("loms started without a database")
	}
	for _, name := range []string{"DATABASE_URL", "KAFKA_BROKERS", "LOMS_PAYMENT_TIMEOUT", "MINIZON_LOG_LEVEL"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error %q does not name %s", err, name)
		}
	}
}

func TestUnknownCommandPrintsUsage(t *testing.T) {
	var out strings.Builder
	if err := run(t.Context(), []string{"shop"}, &out); err == nil || !strings.Contains(out.String(), "usage: minizon") {
		t.Fatalf("err %v, output %q", err, out.String())
	}
}

func TestCheckoutAndProductRefuseToStartWithoutTheirSettings(t *testing.T) {
	for k, v := range map[string]string{
		"DATABASE_URL": "", "LOMS_ADDR": "", "PRODUCT_ADDR": "ftp://x", "PRODUCT_TOKEN": "", "PRODUCT_TOKENS": "",
		"PRODUCT_PROTOCOL": "soap", "PRODUCT_CONCURRENCY": "0",
	} {
		t.Setenv(k, v)
	}
	err := run(t.Context(), []string{"checkout"}, io.Discard)
	for _, name := range []string{"DATABASE_URL", "LOMS_ADDR", "PRODUCT_ADDR", "PRODUCT_TOKEN", "PRODUCT_PROTOCOL", "PRODUCT_CONCURRENCY"} {
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("checkout: error %v does not name %s", err, name)
		}
	}
	err = run(t.Context(), []string{"product"}, io.Discard)
	for _, name := range []string{"DATABASE_URL", "PRODUCT_TOKENS"} {
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("product: error %v does not name %s", err, name)
		}
	}
	if err := run(t.Context(), []string{"product", "export"}, io.Discard); err == nil {
		t.Error("product export: no error")
	}
}
