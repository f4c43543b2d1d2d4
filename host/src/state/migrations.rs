//! The state schema, one migration per release that changes it, for each database. Never edit a released
//! migration: add one.

/// Applied in order; `PRAGMA user_version` holds how many have been.
pub const SQLITE: &[&str] = &[
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
    // 3: how a failed object was read (its plugins, their builds, options and limits), so that a change of
    // them makes it worth trying again.
    "ALTER TABLE objects ADD COLUMN reader TEXT;",
    // 4: one lease per dataflow: who runs it, until when (milliseconds on the store's clock) unless renewed,
    // and the fencing token each taking raises.
    "CREATE TABLE leases (
        dataflow TEXT PRIMARY KEY,
        token INTEGER NOT NULL,
        holder TEXT NOT NULL,
        expires_at INTEGER NOT NULL
    );",
    // 5: workers that share dataflows' objects (each daemon with its heartbeat), the work of runs they
    // share (one row per object, claimed under a lease on the store's clock whose token each claim
    // raises), and which worker loaded each object.
    "CREATE TABLE workers (
        id TEXT PRIMARY KEY,
        host TEXT NOT NULL,
        pid INTEGER NOT NULL,
        started_at INTEGER NOT NULL,
        heartbeat_at INTEGER NOT NULL
    );
    CREATE TABLE work (
        run_id INTEGER NOT NULL,
        dataflow TEXT NOT NULL,
        key TEXT NOT NULL,
        etag TEXT NOT NULL,
        size INTEGER NOT NULL,
        last_modified INTEGER NOT NULL,
        fence INTEGER NOT NULL,
        reading TEXT NOT NULL,
        status TEXT NOT NULL,
        worker TEXT,
        claim INTEGER NOT NULL DEFAULT 0,
        expires_at INTEGER NOT NULL DEFAULT 0,
        attempts INTEGER NOT NULL DEFAULT 0,
        rows INTEGER NOT NULL DEFAULT 0,
        rejected INTEGER NOT NULL DEFAULT 0,
        bytes INTEGER NOT NULL DEFAULT 0,
        elapsed_ms INTEGER NOT NULL DEFAULT 0,
        error TEXT,
        PRIMARY KEY (run_id, key, etag)
    );
    CREATE INDEX work_to_claim ON work (dataflow, status);
    ALTER TABLE objects ADD COLUMN worker TEXT;",
];

/// Applied in order, in the schema `_sluice`; its table `schema_version` holds how many have been. The
/// schema matches SQLite's latest, in PostgreSQL's types (64-bit integers throughout).
pub const POSTGRES: &[&str] = &[
    // 1: runs, the object ledger, cursors, dataflows.
    "CREATE TABLE runs (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        dataflow TEXT NOT NULL,
        started_at BIGINT NOT NULL,
        ended_at BIGINT,
        status TEXT NOT NULL,
        objects BIGINT NOT NULL DEFAULT 0,
        failed_objects BIGINT NOT NULL DEFAULT 0,
        rows BIGINT NOT NULL DEFAULT 0,
        rejected BIGINT NOT NULL DEFAULT 0,
        bytes BIGINT NOT NULL DEFAULT 0,
        error TEXT
    );
    CREATE INDEX runs_by_dataflow ON runs (dataflow, id);
    CREATE TABLE objects (
        dataflow TEXT NOT NULL,
        key TEXT NOT NULL,
        etag TEXT NOT NULL,
        size BIGINT NOT NULL,
        last_modified BIGINT NOT NULL,
        status TEXT NOT NULL,
        rows BIGINT NOT NULL DEFAULT 0,
        rejected BIGINT NOT NULL DEFAULT 0,
        error TEXT,
        run_id BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        PRIMARY KEY (dataflow, key, etag)
    );
    CREATE TABLE cursors (
        dataflow TEXT PRIMARY KEY,
        last_modified BIGINT NOT NULL,
        run_id BIGINT NOT NULL,
        updated_at BIGINT NOT NULL
    );
    CREATE TABLE dataflows (
        name TEXT PRIMARY KEY,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        config_hash TEXT NOT NULL
    );",
    // 3: as SQLite's 3.
    "ALTER TABLE objects ADD COLUMN reader TEXT;",
    // 4: as SQLite's 4.
    "CREATE TABLE leases (
        dataflow TEXT PRIMARY KEY,
        token BIGINT NOT NULL,
        holder TEXT NOT NULL,
        expires_at BIGINT NOT NULL
    );",
    // 5: as SQLite's 5.
    "CREATE TABLE workers (
        id TEXT PRIMARY KEY,
        host TEXT NOT NULL,
        pid BIGINT NOT NULL,
        started_at BIGINT NOT NULL,
        heartbeat_at BIGINT NOT NULL
    );
    CREATE TABLE work (
        run_id BIGINT NOT NULL,
        dataflow TEXT NOT NULL,
        key TEXT NOT NULL,
        etag TEXT NOT NULL,
        size BIGINT NOT NULL,
        last_modified BIGINT NOT NULL,
        fence BIGINT NOT NULL,
        reading TEXT NOT NULL,
        status TEXT NOT NULL,
        worker TEXT,
        claim BIGINT NOT NULL DEFAULT 0,
        expires_at BIGINT NOT NULL DEFAULT 0,
        attempts BIGINT NOT NULL DEFAULT 0,
        rows BIGINT NOT NULL DEFAULT 0,
        rejected BIGINT NOT NULL DEFAULT 0,
        bytes BIGINT NOT NULL DEFAULT 0,
        elapsed_ms BIGINT NOT NULL DEFAULT 0,
        error TEXT,
        PRIMARY KEY (run_id, key, etag)
    );
    CREATE INDEX work_to_claim ON work (dataflow, status);
    ALTER TABLE objects ADD COLUMN worker TEXT;",
];
