package store

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestZZMake1M(t *testing.T) {
	srv := os.Getenv("PGPERF_SERVER")
	if srv == "" {
		t.Skip()
	}
	ctx := context.Background()
	c, err := pgx.Connect(ctx, srv)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = c.Exec(ctx, `CREATE DATABASE pgperf1m`)
	c.Close(ctx)
	url := os.Getenv("PGPERF_URL")
	db, err := OpenPostgres(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	end := time.Now().UTC().Truncate(time.Hour).UnixMilli()
	t0 := time.Now()
	if err := GenerateAudit(ctx, db, 1000000, end-365*86400000, end, 1); err != nil {
		t.Fatal(err)
	}
	t.Logf("generated in %v", time.Since(t0))
	if _, err := db.SQL().ExecContext(ctx, `ANALYZE`); err != nil {
		t.Fatal(err)
	}
}
