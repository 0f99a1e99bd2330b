package main

// FerretDB 1.24's PostgreSQL backend pushes a top-level equality filter down as
// `_jsonb->$1 @> $2` (the field name is a parameter) and creates btree indexes, which
// cannot answer `@>`. preparePostgreSQL makes PostgreSQL serve those filters:
//
//   - gin_mirror.sql keeps a GIN index on `(_jsonb->'field')` for every field of every
//     index FerretDB creates (and `_id`), through event triggers on FerretDB's own DDL;
//   - `plan_cache_mode = force_custom_plan` on the database: FerretDB's driver prepares
//     and caches statements, and a generic plan of `_jsonb->$1` cannot match an
//     expression index; a custom plan sees `_jsonb->'user_id'` and uses it.

import (
	"context"
	_ "embed"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// setupTimeout bounds waiting for PostgreSQL and installing the mirrors at start.
const setupTimeout = 60 * time.Second

//go:embed gin_mirror.sql
var ginMirrorSQL string

// preparePostgreSQL installs the GIN mirroring into the database of url (idempotent) and
// sets the database's plan cache mode. It needs to own the database (event triggers
// require a superuser): the local cluster's only role is one.
func preparePostgreSQL(ctx context.Context, url string, logger *slog.Logger) error {
	conn, err := connectWithRetry(ctx, url)
	if err != nil {
		return fmt.Errorf("connecting to PostgreSQL: %w", err)
	}
	defer conn.Close(context.Background())

	var db string
	if err = conn.QueryRow(ctx, "SELECT current_database()").Scan(&db); err != nil {
		return err
	}

	// Simple protocol: the script has several statements and no parameters.
	if _, err = conn.Exec(ctx, ginMirrorSQL, pgx.QueryExecModeSimpleProtocol); err != nil {
		return fmt.Errorf("installing GIN index mirroring: %w", err)
	}

	q := fmt.Sprintf("ALTER DATABASE %s SET plan_cache_mode = force_custom_plan", pgx.Identifier{db}.Sanitize())
	if _, err = conn.Exec(ctx, q); err != nil {
		return fmt.Errorf("setting plan_cache_mode: %w", err)
	}

	logger.Info("PostgreSQL ready: GIN index mirroring installed", "database", db)

	return nil
}

// connectWithRetry waits for PostgreSQL to accept connections (it may still be starting).
// url is FerretDB's pool URL: pool settings such as pool_max_conns are allowed in it.
func connectWithRetry(ctx context.Context, url string) (*pgx.Conn, error) {
	config, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, err
	}

	for {
		conn, err := pgx.ConnectConfig(ctx, config.ConnConfig)
		if err == nil {
			return conn, nil
		}

		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(250 * time.Millisecond):
		}
	}
}
