// Command herald-ferretdb runs FerretDB (a MongoDB wire-protocol server) on top of
// PostgreSQL for local development and tests, when no real mongod is available.
//
// It wraps the embeddable package github.com/FerretDB/FerretDB/ferretdb because the
// upstream command cannot be built with `go install` (it needs generated version files).
// The embedded server never runs the telemetry reporter and marks telemetry as disabled.
//
// On PostgreSQL (the default backend) it first installs gin_mirror.sql into the database,
// so that the equality filters FerretDB pushes down are served by GIN indexes, and makes
// PostgreSQL plan every statement with its parameter values (see postgres.go). The SQLite
// backend (-backend sqlite) pushes down only _id lookups and is kept for comparison.
//
// By default, write commands are serialized in front of FerretDB so that single-document
// updates are atomic as in MongoDB (see proxy.go); -serialize-writes=false turns it off.
//
// Usage:
//
//	herald-ferretdb [-listen-addr 127.0.0.1:27017] [-postgresql-url postgres://...] [-data-dir .run/ferretdb] [-log-level info]
//	herald-ferretdb -backend sqlite [-data-dir .run/ferretdb-sqlite]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
)

// shutdownGrace bounds how long we wait for open client connections after a signal.
const shutdownGrace = 15 * time.Second

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "herald-ferretdb:", err)
		os.Exit(1)
	}
}

func run() error {
	listenAddr := flag.String("listen-addr", "127.0.0.1:27017", "TCP address to listen on")
	backend := flag.String("backend", "postgresql", "storage backend: postgresql or sqlite")
	pgURL := flag.String("postgresql-url", "postgres://herald@127.0.0.1:5433/ferretdb?sslmode=disable", "PostgreSQL database for the postgresql backend")
	dataDir := flag.String("data-dir", ".run/ferretdb", "directory for the proxy socket and, with -backend sqlite, the database files")
	logLevel := flag.String("log-level", "info", "log level: debug, info, warn or error")
	serialize := flag.Bool("serialize-writes", true, "run write commands one at a time, so that updates are atomic")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "Usage: %s [flags]\n\n", filepath.Base(os.Args[0]))
		fmt.Fprintln(flag.CommandLine.Output(), "Runs a MongoDB-compatible server (FerretDB on PostgreSQL or SQLite).")
		fmt.Fprintln(flag.CommandLine.Output())
		flag.PrintDefaults()
	}
	flag.Parse()

	if flag.NArg() > 0 {
		flag.Usage()
		return fmt.Errorf("unexpected arguments: %s", strings.Join(flag.Args(), " "))
	}

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("invalid -log-level %q: %w", *logLevel, err)
	}

	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	slog.SetDefault(logger)

	dir, err := filepath.Abs(*dataDir)
	if err != nil {
		return fmt.Errorf("resolving -data-dir: %w", err)
	}

	if err = os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating data directory: %w", err)
	}

	config := &ferretdb.Config{Logger: logger, Handler: *backend}

	switch *backend {
	case "postgresql":
		setupCtx, cancel := context.WithTimeout(context.Background(), setupTimeout)
		err = preparePostgreSQL(setupCtx, *pgURL, logger)
		cancel()

		if err != nil {
			return err
		}

		config.PostgreSQLURL = *pgURL

	case "sqlite":
		// The SQLite backend wants a "file:" URI naming an existing directory, ending with "/".
		config.SQLiteURL = (&url.URL{Scheme: "file", Path: dir + "/"}).String()

	default:
		return fmt.Errorf("invalid -backend %q: postgresql or sqlite", *backend)
	}

	listener := ferretdb.ListenerConfig{TCP: *listenAddr}

	if *serialize {
		// FerretDB itself listens on a private Unix socket; clients connect to the proxy.
		sock, cleanup, err := privateSocket(dir)
		if err != nil {
			return err
		}
		defer cleanup()

		listener = ferretdb.ListenerConfig{Unix: sock}
	}

	config.Listener = listener

	f, err := ferretdb.New(config)
	if err != nil {
		return err
	}

	var ln net.Listener
	if *serialize {
		if ln, err = net.Listen("tcp", *listenAddr); err != nil {
			return err
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	logger.Info("herald-ferretdb starting",
		"listen_addr", *listenAddr, "backend", *backend, "data_dir", dir, "serialize_writes", *serialize, "pid", os.Getpid())

	ferretDone := make(chan error, 1)
	go func() { ferretDone <- f.Run(ctx) }()

	var proxyDone chan struct{} // stays nil (blocks forever) without the proxy
	if *serialize {
		proxyDone = make(chan struct{})

		go func() {
			newWriteSerializer(listener.Unix, logger).serve(ctx, ln)
			close(proxyDone)
		}()
	}

	select {
	case err = <-ferretDone:
		// Run returns only after ctx is canceled, so this is not expected.
		if err == nil {
			err = errors.New("server stopped unexpectedly")
		}

		return err

	case <-proxyDone:
		return errors.New("listener stopped unexpectedly")

	case <-ctx.Done():
	}

	stop() // a second signal kills the process the default way
	logger.Info("herald-ferretdb stopping")

	timeout := time.After(shutdownGrace)
	timeoutErr := fmt.Errorf("connections still open %s after the stop signal; exiting anyway", shutdownGrace)

	if proxyDone != nil {
		select {
		case <-proxyDone:
		case <-timeout:
			return timeoutErr
		}
	}

	select {
	case err = <-ferretDone:
	case <-timeout:
		return timeoutErr
	}

	if err != nil {
		return err
	}

	logger.Info("herald-ferretdb stopped")

	return nil
}

// privateSocket picks the path of FerretDB's Unix socket: in the data directory, or in a
// temporary directory when that path would be too long for a socket address (~108 bytes).
func privateSocket(dataDir string) (string, func(), error) {
	sock := filepath.Join(dataDir, "ferretdb.sock")

	if len(sock) < 100 {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			return "", nil, fmt.Errorf("%s is in use: is another herald-ferretdb using %s?", sock, dataDir)
		}

		_ = os.Remove(sock) // left over by a killed process

		return sock, func() { _ = os.Remove(sock) }, nil
	}

	tmp, err := os.MkdirTemp("", "herald-ferretdb-")
	if err != nil {
		return "", nil, err
	}

	return filepath.Join(tmp, "ferretdb.sock"), func() { _ = os.RemoveAll(tmp) }, nil
}
