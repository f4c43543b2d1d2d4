//! The state schema, one migration per release that changes it. Never edit a released migration: add one.

/// Applied in order; `PRAGMA user_version` holds how many have been.
pub const MIGRATIONS: &[&str] = &[
    // 1: runs, the object ledger, cursors. Times are milliseconds since 1970 (UTC).
    "CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        dataflow TEXT NOT NULL,
        started_at INTEGER NOT NULL,
        ended_at INTEGER,
        status TEXT NOT NULL,
        objects INTEGER NOT NULL DEFAULT 0,
        failed_objects INTEGER NOT NULL DEFAULT 0,
        rows INTEGER NOT NULL DEFAULT 0,
        rejected INTEGER NOT NULL DEFAULT 0,
        bytes INTEGER NOT NULL DEFAULT 0,
        error TEXT
    );
    CREATE INDEX runs_by_dataflow ON runs (dataflow, id);
    CREATE TABLE objects (
        dataflow TEXT NOT NULL,
        key TEXT NOT NULL,
        etag TEXT NOT NULL,
        size INTEGER NOT NULL,
        last_modified INTEGER NOT NULL,
        status TEXT NOT NULL,
        rows INTEGER NOT NULL DEFAULT 0,
        rejected INTEGER NOT NULL DEFAULT 0,
        error TEXT,
        run_id INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (dataflow, key, etag)
    );
    CREATE TABLE cursors (
        dataflow TEXT PRIMARY KEY,
        last_modified INTEGER NOT NULL,
        run_id INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    );",
    // 2: dataflows as first seen by a run, and when their configuration last changed.
    "CREATE TABLE dataflows (
        name TEXT PRIMARY KEY,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        config_hash TEXT NOT NULL
    );",
];
