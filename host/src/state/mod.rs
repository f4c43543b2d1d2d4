//! State: runs, the object ledger and cursors, in SQLite (a file beside the configuration, by default) or
//! in PostgreSQL (schema `_sluice`). The schema is versioned from the first release: [`migrations`] are
//! applied in order and the database records how far, so a newer Sluice upgrades an older state store and
//! an older Sluice refuses a newer one.

mod lease;
pub mod migrations;
mod renew;
mod sql;
mod work;

use crate::config::DatabaseUrl;
use crate::env::redact_stripe_keys;
use crate::object::ObjectMeta;
use crate::pg;
use crate::time::{from_millis, millis};
use rusqlite::{Connection, OpenFlags};
use sql::{Arg, Database, Row, Session, Sql};
use std::time::{Duration, SystemTime};

pub use lease::{Lease, LockError, RunLock, is_running, lock_dataflow, lock_file};
pub use work::{
    Claim, MAX_ATTEMPTS, WORK_CHANNEL, WorkOutcome, WorkProgress, Worker, WorkerIdentity, WorkerRecord,
};

/// How long a write waits for another process's transaction before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// The PostgreSQL schema the state lives in; dataflow names start with a letter, so no dataflow's schema
/// is called this.
const POSTGRES_SCHEMA: &str = "_sluice";

/// The advisory lock key under which PostgreSQL migrations run one process at a time ("sluice").
const MIGRATION_LOCK: i64 = 0x736c_7569_6365;

/// The error of a run whose process stopped before the run ended.
const DIED: &str = "the process stopped before the run ended; its counts are what it committed";

/// A state store error: what failed and on which database.
#[derive(Debug, thiserror::Error)]
#[error("state store {location}: {message}")]
pub struct StateError {
    /// The database file, or the server's URL without its password.
    pub location: String,
    /// What went wrong.
    pub message: String,
}

/// How an object stands in the ledger.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectStatus {
    /// Its rows are in the sink.
    Loaded,
    /// It cannot be read as its format (a malformed file); settled until its ETag changes.
    Failed,
    /// It could not be read this time (network, source); the next run tries again.
    Pending,
    /// Its rows were rolled back and the user asked that it not be imported again (until its ETag changes).
    Skipped,
}

impl ObjectStatus {
    /// The status as the ledger stores it and listings show it.
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectStatus::Loaded => "loaded",
            ObjectStatus::Failed => "failed",
            ObjectStatus::Pending => "pending",
            ObjectStatus::Skipped => "skipped",
        }
    }

    fn parse(text: &str) -> ObjectStatus {
        match text {
            "loaded" => ObjectStatus::Loaded,
            "failed" => ObjectStatus::Failed,
            "skipped" => ObjectStatus::Skipped,
            _ => ObjectStatus::Pending,
        }
    }

    /// Whether the next run leaves the object alone (until its ETag changes).
    pub fn is_settled(self) -> bool {
        self != ObjectStatus::Pending
    }
}

/// One version (key and ETag) of an object in the ledger.
#[derive(Clone, Debug, PartialEq)]
pub struct LedgerEntry {
    /// The object's key.
    pub key: String,
    /// The version's ETag.
    pub etag: String,
    /// Its size in bytes.
    pub size: u64,
    /// When it was last written.
    pub last_modified: SystemTime,
    /// How it stands.
    pub status: ObjectStatus,
    /// Rows loaded from it.
    pub rows: u64,
    /// Rows of it refused.
    pub rejected: u64,
    /// Why it failed or is pending, where it did not load.
    pub error: Option<String>,
    /// How the run that last took it read it ([`ObjectOutcome::reader`]).
    pub reader: Option<String>,
    /// The worker that loaded it, where workers shared its run ([`WorkerIdentity::id`]).
    pub worker: Option<String>,
    /// The run that last took it.
    pub run_id: i64,
}

/// What a run made of an object version, for the ledger.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ObjectOutcome<'a> {
    /// How it stands now.
    pub status: ObjectStatus,
    /// Rows loaded from it.
    pub rows: u64,
    /// Rows of it refused.
    pub rejected: u64,
    /// Bytes of it read from the source.
    pub bytes: u64,
    /// Why it failed or is pending, where it did not load.
    pub error: Option<&'a str>,
    /// How it was read: a fingerprint of the plugins (their builds and limits) and options the run read
    /// it with. A failed object read another way since is worth trying again.
    pub reader: Option<&'a str>,
    /// The worker that took it, where workers share its run ([`WorkerIdentity::id`]).
    pub worker: Option<&'a str>,
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunStatus {
    /// It has not ended yet (or its process was killed before it could say how it ended).
    Running,
    /// Every object it took was loaded.
    Succeeded,
    /// Some objects failed, others loaded.
    Partial,
    /// Nothing could be loaded: the source could not be listed, or every object failed.
    Failed,
    /// The process stopped before the run ended.
    Interrupted,
    /// Its changes were undone by a rollback.
    RolledBack,
}

impl RunStatus {
    /// The status as the state store keeps it and listings show it.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Partial => "partial",
            RunStatus::Failed => "failed",
            RunStatus::Interrupted => "interrupted",
            RunStatus::RolledBack => "rolled back",
        }
    }

    fn parse(text: &str) -> RunStatus {
        match text {
            "running" => RunStatus::Running,
            "succeeded" => RunStatus::Succeeded,
            "partial" => RunStatus::Partial,
            "interrupted" => RunStatus::Interrupted,
            "rolled back" => RunStatus::RolledBack,
            _ => RunStatus::Failed,
        }
    }
}

/// Totals of a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunCounts {
    /// Objects the run took.
    pub objects: u64,
    /// Objects of those that did not load.
    pub failed_objects: u64,
    /// Rows written.
    pub rows: u64,
    /// Rows refused (by the format plugin, the template or the sink).
    pub rejected: u64,
    /// Bytes read from the source.
    pub bytes: u64,
}

/// A run as recorded.
#[derive(Clone, Debug, PartialEq)]
pub struct RunRecord {
    /// The run's number, unique in the state store.
    pub id: i64,
    /// The dataflow it ran.
    pub dataflow: String,
    /// When it started.
    pub started_at: SystemTime,
    /// When it ended; `None` while it runs.
    pub ended_at: Option<SystemTime>,
    /// How it ended.
    pub status: RunStatus,
    /// Its totals.
    pub counts: RunCounts,
    /// Why it failed, or which objects failed.
    pub error: Option<String>,
}

/// When a dataflow was first run, and when its configuration last changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataflowRecord {
    /// When the dataflow first ran.
    pub created_at: SystemTime,
    /// When its configuration last changed, as its fingerprint tells.
    pub updated_at: SystemTime,
}

/// The state database.
pub struct StateStore {
    database: Database,
    url: DatabaseUrl,
    location: String,
    /// The dataflow and fencing token of the run that writes through this store, once it holds its lease:
    /// its ledger writes then check the token in their own transactions.
    fence: Option<(String, i64)>,
}

impl StateStore {
    /// Opens (creating where missing) and migrates the state database at `url`.
    pub fn open(url: &DatabaseUrl) -> Result<StateStore, StateError> {
        StateStore::open_as(url, None)
    }

    /// As [`StateStore::open`]; on PostgreSQL, on a connection of its own named `session` in
    /// `pg_stat_activity` rather than one from the pool (which the loads in flight may all hold).
    pub fn open_as(url: &DatabaseUrl, session: Option<&str>) -> Result<StateStore, StateError> {
        let location = url.to_string();
        let error = |message: String| StateError { location: location.clone(), message };
        let database = match url {
            DatabaseUrl::Sqlite(path) => {
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent).map_err(|e| error(e.to_string()))?;
                }
                // WAL lets readers (preview, listings) run beside a run.
                let connection = crate::sqlite::open(path, BUSY_TIMEOUT).map_err(|e| error(e.to_string()))?;
                Database::Sqlite(connection)
            }
            DatabaseUrl::Postgres(url) => {
                let mut client = match session {
                    Some(name) => {
                        let mut own = pg::connect_unpooled(url).map_err(&error)?;
                        own.execute("SELECT set_config('application_name', $1, false)", &[&name])
                            .map_err(|e| error(pg::describe(&e)))?;
                        Session::Own(own)
                    }
                    None => Session::Pooled(pg::connect(url).map_err(&error)?),
                };
                client
                    .batch_execute(&format!("SET search_path TO {POSTGRES_SCHEMA}"))
                    .map_err(|e| error(pg::describe(&e)))?;
                Database::Postgres(Box::new(client))
            }
        };
        let mut store = StateStore { database, url: url.clone(), location, fence: None };
        store.migrate()?;
        Ok(store)
    }

    /// Opens an existing state database without writing to it; `None` where there is none yet.
    pub fn open_read_only(url: &DatabaseUrl) -> Result<Option<StateStore>, StateError> {
        let location = url.to_string();
        let error = |message: String| StateError { location: location.clone(), message };
        let database = match url {
            DatabaseUrl::Sqlite(path) => {
                if !path.exists() {
                    return Ok(None);
                }
                let connection = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
                    .map_err(|e| error(e.to_string()))?;
                Database::Sqlite(connection)
            }
            DatabaseUrl::Postgres(url) => {
                let mut client = pg::connect(url).map_err(&error)?;
                let exists = client
                    .query_one(
                        &format!("SELECT to_regclass('{POSTGRES_SCHEMA}.schema_version') IS NOT NULL"),
                        &[],
                    )
                    .and_then(|row| row.try_get::<_, bool>(0))
                    .map_err(|e| error(pg::describe(&e)))?;
                if !exists {
                    return Ok(None);
                }
                client
                    .batch_execute(&format!("SET search_path TO {POSTGRES_SCHEMA}"))
                    .map_err(|e| error(pg::describe(&e)))?;
                Database::Postgres(Box::new(Session::Pooled(client)))
            }
        };
        let mut store = StateStore { database, url: url.clone(), location, fence: None };
        let (version, latest) = (store.schema_version()?, store.migrations().len());
        if version == 0 {
            // Made a moment ago by a run that has not migrated it yet: nothing is recorded in it.
            return Ok(None);
        }
        if version != latest {
            return Err(store.error(format!(
                "schema version {version}, this Sluice reads version {latest}; run `sluice run` once to upgrade it"
            )));
        }
        Ok(Some(store))
    }

    /// Opens the store again on a new connection, keeping its fence: after a connection the server ended
    /// (a restart, a failover), so that what is left to record can still be.
    pub fn reopen(&mut self) -> Result<(), StateError> {
        let fence = self.fence.take();
        *self = StateStore::open(&self.url)?;
        self.fence = fence;
        Ok(())
    }

    fn error(&self, message: impl std::fmt::Display) -> StateError {
        StateError { location: self.location.clone(), message: message.to_string() }
    }

    fn migrations(&self) -> &'static [&'static str] {
        match self.database {
            Database::Sqlite(_) => migrations::SQLITE,
            Database::Postgres(_) => migrations::POSTGRES,
        }
    }

    /// Whether the PostgreSQL state schema exists at the latest version.
    fn up_to_date(&mut self) -> Result<bool, StateError> {
        let exists = self.query(
            &format!(
                "SELECT CASE WHEN to_regclass('{POSTGRES_SCHEMA}.schema_version') IS NULL THEN 0 ELSE 1 END"
            ),
            &[],
            |row| row.int(0),
        );
        match exists {
            Ok(exists) if exists.first() == Some(&1) => Ok(self.schema_version()? == self.migrations().len()),
            Ok(_) => Ok(false),
            Err(error) => Err(error),
        }
    }

    fn schema_version(&mut self) -> Result<usize, StateError> {
        let query = match self.database {
            Database::Sqlite(_) => "PRAGMA user_version".to_string(),
            Database::Postgres(_) => "SELECT coalesce(max(version), 0) FROM schema_version".to_string(),
        };
        let version = self.query(&query, &[], |row| row.int(0))?;
        Ok(version.first().copied().unwrap_or(0) as usize)
    }

    fn migrate(&mut self) -> Result<(), StateError> {
        let migrations = self.migrations();
        let postgres = matches!(self.database, Database::Postgres(_));
        // A store already at the latest version, as almost every open finds it, is left alone: no lock,
        // no statements (and no server notices of schemas that exist).
        if postgres && self.up_to_date()? {
            return Ok(());
        }
        let outcome = self.database.transaction(|sql| {
            let version = if postgres {
                // One process migrates at a time; the others wait, then find the work done.
                sql.execute("SELECT pg_advisory_xact_lock(?1)", &[Arg::Int(MIGRATION_LOCK)])?;
                sql.batch(&format!(
                    "CREATE SCHEMA IF NOT EXISTS {POSTGRES_SCHEMA};
                     CREATE TABLE IF NOT EXISTS {POSTGRES_SCHEMA}.schema_version (version BIGINT NOT NULL)"
                ))?;
                sql.query("SELECT coalesce(max(version), 0) FROM schema_version", &[])?[0].int(0)?
            } else {
                sql.query("PRAGMA user_version", &[])?[0].int(0)?
            } as usize;
            if version > migrations.len() {
                return Err(format!(
                    "schema version {version} was written by a newer Sluice; this one knows up to {}",
                    migrations.len()
                ));
            }
            for (index, migration) in migrations.iter().enumerate().skip(version) {
                sql.batch(migration).map_err(|e| format!("migration {} failed: {e}", index + 1))?;
            }
            if version < migrations.len() {
                let latest = migrations.len() as i64;
                if postgres {
                    sql.execute("INSERT INTO schema_version (version) VALUES (?1)", &[Arg::Int(latest)])?;
                } else {
                    sql.batch(&format!("PRAGMA user_version = {latest}"))?;
                }
            }
            Ok(())
        });
        outcome.map_err(|e| self.error(e))
    }

    /// Runs one statement that changes the state.
    fn execute(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<(), StateError> {
        let outcome = self.database.sql().execute(sql, args);
        outcome.map(drop).map_err(|e| self.error(e))
    }

    /// Runs a query and reads each of its rows with `read`.
    fn query<T>(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
        read: impl Fn(&Row) -> Result<T, String>,
    ) -> Result<Vec<T>, StateError> {
        let rows = self.database.sql().query(sql, args);
        let rows = rows.map_err(|e| self.error(e))?;
        rows.iter().map(read).collect::<Result<_, _>>().map_err(|e| self.error(e))
    }

    /// Runs `work` in one transaction.
    fn transaction<T>(
        &mut self,
        work: impl FnOnce(&mut dyn Sql) -> Result<T, String>,
    ) -> Result<T, StateError> {
        self.database
            .transaction(work)
            .map_err(|e| StateError { location: self.location.clone(), message: e })
    }

    /// Records the start of a run. Runs of the dataflow still marked running were cut off (the process was
    /// killed) and are recorded as interrupted.
    pub fn begin_run(&mut self, dataflow: &str, now: SystemTime) -> Result<i64, StateError> {
        self.transaction(|sql| {
            sql.execute(
                "UPDATE runs SET status = 'interrupted', error = ?2 WHERE dataflow = ?1 AND status = 'running'",
                &[dataflow.into(), DIED.into()],
            )?;
            let inserted = sql.query(
                "INSERT INTO runs (dataflow, started_at, status) VALUES (?1, ?2, 'running') RETURNING id",
                &[dataflow.into(), millis(now).into()],
            )?;
            inserted[0].int(0)
        })
    }

    /// Records that a run of `dataflow` starts with a configuration whose fingerprint is `config_hash`:
    /// the first time, the dataflow is created; when the fingerprint differs, it was updated.
    pub fn note_dataflow(
        &mut self,
        dataflow: &str,
        config_hash: &str,
        now: SystemTime,
    ) -> Result<(), StateError> {
        self.execute(
            "INSERT INTO dataflows (name, created_at, updated_at, config_hash) VALUES (?1, ?2, ?2, ?3)
                 ON CONFLICT (name) DO UPDATE SET updated_at = excluded.updated_at,
                 config_hash = excluded.config_hash WHERE dataflows.config_hash <> excluded.config_hash",
            &[dataflow.into(), millis(now).into(), config_hash.into()],
        )
    }

    /// When `dataflow` was created and last updated, if it has run.
    pub fn dataflow_record(&mut self, dataflow: &str) -> Result<Option<DataflowRecord>, StateError> {
        let records = self.query(
            "SELECT created_at, updated_at FROM dataflows WHERE name = ?1",
            &[dataflow.into()],
            |row| {
                Ok(DataflowRecord {
                    created_at: from_millis(row.int(0)?),
                    updated_at: from_millis(row.int(1)?),
                })
            },
        )?;
        Ok(records.into_iter().next())
    }

    /// Forgets everything about `dataflow`: its runs, ledger, cursors (its tables' too, kept under
    /// `dataflow/table`) and record, in one transaction.
    pub fn forget_dataflow(&mut self, dataflow: &str) -> Result<(), StateError> {
        self.transaction(|sql| {
            for table in ["objects", "runs"] {
                sql.execute(&format!("DELETE FROM {table} WHERE dataflow = ?1"), &[dataflow.into()])?;
            }
            // Dataflow names are letters and digits, so the pattern holds no wildcard but its own.
            let tables = format!("{dataflow}/%");
            sql.execute(
                "DELETE FROM cursors WHERE dataflow = ?1 OR dataflow LIKE ?2",
                &[dataflow.into(), tables.as_str().into()],
            )?;
            sql.execute("DELETE FROM dataflows WHERE name = ?1", &[dataflow.into()]).map(drop)
        })
    }

    /// Forgets one cursor, so the next run lists from the start.
    pub fn forget_cursor(&mut self, scope: &str) -> Result<(), StateError> {
        self.transaction(|sql| {
            sql.execute("DELETE FROM cursors WHERE dataflow = ?1", &[scope.into()]).map(drop)
        })
    }

    /// Records how a run ended.
    pub fn end_run(
        &mut self,
        run_id: i64,
        status: RunStatus,
        counts: RunCounts,
        error: Option<&str>,
        now: SystemTime,
    ) -> Result<(), StateError> {
        let error = error.map(redact_stripe_keys);
        self.execute(
            "UPDATE runs SET ended_at = ?2, status = ?3, objects = ?4, failed_objects = ?5, rows = ?6,
                 rejected = ?7, bytes = ?8, error = ?9 WHERE id = ?1",
            &[
                run_id.into(),
                millis(now).into(),
                status.as_str().into(),
                (counts.objects as i64).into(),
                (counts.failed_objects as i64).into(),
                (counts.rows as i64).into(),
                (counts.rejected as i64).into(),
                (counts.bytes as i64).into(),
                error.as_deref().into(),
            ],
        )
    }

    /// Records a run of `dataflow` that failed before it could begin (its sink or this store was out of
    /// reach when it was due), so that the run history shows it with its error.
    pub fn record_failed_run(
        &mut self,
        dataflow: &str,
        started: SystemTime,
        ended: SystemTime,
        error: &str,
    ) -> Result<i64, StateError> {
        let error = redact_stripe_keys(error);
        self.transaction(|sql| {
            let inserted = sql.query(
                "INSERT INTO runs (dataflow, started_at, ended_at, status, error)
                 VALUES (?1, ?2, ?3, 'failed', ?4) RETURNING id",
                &[dataflow.into(), millis(started).into(), millis(ended).into(), error.as_str().into()],
            )?;
            inserted[0].int(0)
        })
    }

    /// Marks the object versions `run_id` loaded as skipped: rolled back, and not to be imported again.
    pub fn skip_objects_of_run(
        &mut self,
        dataflow: &str,
        run_id: i64,
        now: SystemTime,
    ) -> Result<u64, StateError> {
        let skipped = self.database.sql().execute(
            "UPDATE objects SET status = 'skipped', updated_at = ?3 WHERE dataflow = ?1 AND run_id = ?2 AND status = 'loaded'",
            &[dataflow.into(), run_id.into(), millis(now).into()],
        );
        skipped.map_err(|e| self.error(e))
    }

    /// Records that a rollback undid a run.
    pub fn mark_rolled_back(&mut self, run_id: i64) -> Result<(), StateError> {
        self.execute("UPDATE runs SET status = 'rolled back' WHERE id = ?1", &[run_id.into()])
    }

    /// The runs of a dataflow, newest first. A run still marked running whose lease is gone (its process
    /// died unrenewed) is shown as interrupted, with what it committed, without waiting for the next run
    /// to record it so.
    pub fn runs(&mut self, dataflow: &str) -> Result<Vec<RunRecord>, StateError> {
        let mut runs = self.query(
            "SELECT id, dataflow, started_at, ended_at, status, objects, failed_objects, rows, rejected,
             bytes, error FROM runs WHERE dataflow = ?1 ORDER BY id DESC",
            &[dataflow.into()],
            |row| {
                Ok(RunRecord {
                    id: row.int(0)?,
                    dataflow: row.text(1)?,
                    started_at: from_millis(row.int(2)?),
                    ended_at: row.opt_int(3)?.map(from_millis),
                    status: RunStatus::parse(&row.text(4)?),
                    counts: RunCounts {
                        objects: row.int(5)? as u64,
                        failed_objects: row.int(6)? as u64,
                        rows: row.int(7)? as u64,
                        rejected: row.int(8)? as u64,
                        bytes: row.int(9)? as u64,
                    },
                    error: row.opt_text(10)?,
                })
            },
        )?;
        if runs.iter().any(|run| run.status == RunStatus::Running) && !self.run_alive(dataflow)? {
            for run in runs.iter_mut().filter(|run| run.status == RunStatus::Running) {
                run.status = RunStatus::Interrupted;
                run.error = Some(DIED.to_string());
            }
        }
        Ok(runs)
    }

    /// Every version of every object the dataflow has recorded.
    pub fn ledger(&mut self, dataflow: &str) -> Result<Vec<LedgerEntry>, StateError> {
        self.query(
            "SELECT key, etag, size, last_modified, status, rows, rejected, error, run_id, reader, worker
             FROM objects WHERE dataflow = ?1 ORDER BY key, updated_at",
            &[dataflow.into()],
            ledger_entry,
        )
    }

    /// Every version the dataflow has recorded of the objects `keys` names: the ledger of a run given its
    /// objects (by event notifications), read by key rather than whole.
    pub fn ledger_of(&mut self, dataflow: &str, keys: &[&str]) -> Result<Vec<LedgerEntry>, StateError> {
        let mut entries = Vec::new();
        for key in keys {
            entries.extend(self.query(
                "SELECT key, etag, size, last_modified, status, rows, rejected, error, run_id, reader, worker
                 FROM objects WHERE dataflow = ?1 AND key = ?2 ORDER BY updated_at",
                &[dataflow.into(), (*key).into()],
                ledger_entry,
            )?);
        }
        Ok(entries)
    }

    /// Records how an object version stands, and counts it in the totals of the run that took it (so that
    /// a run whose process dies shows what it committed). Fenced: see [`StateStore::fence_with`].
    pub fn record_object(
        &mut self,
        dataflow: &str,
        object: &ObjectMeta,
        outcome: ObjectOutcome<'_>,
        run_id: i64,
        now: SystemTime,
    ) -> Result<(), StateError> {
        let ObjectOutcome { status, rows, rejected, bytes, error, reader, worker } = outcome;
        let error = error.map(redact_stripe_keys);
        let (rows, rejected) = (rows as i64, rejected as i64);
        let (loaded_rows, loaded_rejected, failed) =
            if status == ObjectStatus::Loaded { (rows, rejected, 0) } else { (0, 0, 1) };
        self.fenced_transaction(|sql| {
            sql.execute(
                "INSERT INTO objects (dataflow, key, etag, size, last_modified, status, rows, rejected, error,
                     run_id, updated_at, reader, worker)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
                     ON CONFLICT (dataflow, key, etag) DO UPDATE SET size = excluded.size,
                     last_modified = excluded.last_modified, status = excluded.status, rows = excluded.rows,
                     rejected = excluded.rejected, error = excluded.error, run_id = excluded.run_id,
                     updated_at = excluded.updated_at, reader = excluded.reader, worker = excluded.worker",
                &[
                    dataflow.into(),
                    object.key.as_str().into(),
                    object.etag.as_str().into(),
                    (object.size as i64).into(),
                    millis(object.last_modified).into(),
                    status.as_str().into(),
                    rows.into(),
                    rejected.into(),
                    error.as_deref().into(),
                    run_id.into(),
                    millis(now).into(),
                    reader.into(),
                    worker.into(),
                ],
            )?;
            sql.execute(
                "UPDATE runs SET objects = objects + 1, failed_objects = failed_objects + ?2,
                     rows = rows + ?3, rejected = rejected + ?4, bytes = bytes + ?5 WHERE id = ?1",
                &[
                    run_id.into(),
                    failed.into(),
                    loaded_rows.into(),
                    loaded_rejected.into(),
                    (bytes as i64).into(),
                ],
            )
            .map(drop)
        })
    }

    /// Makes the failed objects of `dataflow` (all, or the versions of `key`) pending, so that the next run
    /// imports them again whatever they failed with; loaded objects stay as they are. Returns how many.
    pub fn retry_failed(&mut self, dataflow: &str, key: Option<&str>) -> Result<u64, StateError> {
        let outcome = match key {
            None => self.database.sql().execute(
                "UPDATE objects SET status = 'pending' WHERE dataflow = ?1 AND status = 'failed'",
                &[dataflow.into()],
            ),
            Some(key) => self.database.sql().execute(
                "UPDATE objects SET status = 'pending' WHERE dataflow = ?1 AND status = 'failed' AND key = ?2",
                &[dataflow.into(), key.into()],
            ),
        };
        outcome.map_err(|e| self.error(e))
    }

    /// The dataflow's cursor: the newest LastModified up to which every object is settled.
    pub fn cursor(&mut self, dataflow: &str) -> Result<Option<SystemTime>, StateError> {
        let cursors =
            self.query("SELECT last_modified FROM cursors WHERE dataflow = ?1", &[dataflow.into()], |row| {
                row.int(0).map(from_millis)
            })?;
        Ok(cursors.into_iter().next())
    }

    /// Forgets object versions the ledger had as loaded but the sink does not hold, and moves the cursor
    /// back before the oldest of them, so that the next run imports them again. A run that did not
    /// succeed (killed, say, before a sink that commits objects in groups committed them) no longer
    /// counts them: its totals say what it committed. A run that succeeded keeps its totals, as what it
    /// committed then (the sink's tables lost since).
    pub fn forget_objects(&mut self, dataflow: &str, objects: &[LedgerEntry]) -> Result<(), StateError> {
        let Some(oldest) = objects.iter().map(|o| o.last_modified).min() else { return Ok(()) };
        self.fenced_transaction(|sql| {
            for object in objects {
                sql.execute(
                    "DELETE FROM objects WHERE dataflow = ?1 AND key = ?2 AND etag = ?3",
                    &[dataflow.into(), object.key.as_str().into(), object.etag.as_str().into()],
                )?;
                sql.execute(
                    "UPDATE runs SET objects = objects - 1, rows = rows - ?2, rejected = rejected - ?3,
                         bytes = bytes - ?4 WHERE id = ?1 AND status <> 'succeeded'",
                    &[
                        object.run_id.into(),
                        (object.rows as i64).into(),
                        (object.rejected as i64).into(),
                        (object.size as i64).into(),
                    ],
                )?;
            }
            sql.execute(
                "UPDATE cursors SET last_modified = ?2 WHERE dataflow = ?1 AND last_modified >= ?2",
                &[dataflow.into(), (millis(oldest) - 1).into()],
            )
            .map(drop)
        })
    }

    /// Moves the cursor; it never moves back. Fenced: see [`StateStore::fence_with`].
    pub fn advance_cursor(
        &mut self,
        dataflow: &str,
        cursor: SystemTime,
        run_id: i64,
        now: SystemTime,
    ) -> Result<(), StateError> {
        self.fenced_transaction(|sql| {
            sql.execute(
                "INSERT INTO cursors (dataflow, last_modified, run_id, updated_at) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (dataflow) DO UPDATE SET last_modified = excluded.last_modified,
                     run_id = excluded.run_id, updated_at = excluded.updated_at
                     WHERE excluded.last_modified > cursors.last_modified",
                &[dataflow.into(), millis(cursor).into(), run_id.into(), millis(now).into()],
            )
            .map(drop)
        })
    }
}

/// A row of `SELECT key, etag, size, last_modified, status, rows, rejected, error, run_id, reader, worker
/// FROM objects`.
fn ledger_entry(row: &Row) -> Result<LedgerEntry, String> {
    Ok(LedgerEntry {
        key: row.text(0)?,
        etag: row.text(1)?,
        size: row.int(2)? as u64,
        last_modified: from_millis(row.int(3)?),
        status: ObjectStatus::parse(&row.text(4)?),
        rows: row.int(5)? as u64,
        rejected: row.int(6)? as u64,
        error: row.opt_text(7)?,
        run_id: row.int(8)?,
        reader: row.opt_text(9)?,
        worker: row.opt_text(10)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_testkit::TestDatabase;

    #[test]
    fn processes_that_open_a_new_sqlite_state_store_at_once_all_open_it() {
        // A daemon's first syncs: each dataflow's run opens the new file at the same moment.
        for _ in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let url = DatabaseUrl::Sqlite(dir.path().join("state.db"));
            let start = std::sync::Barrier::new(8);
            std::thread::scope(|scope| {
                let opening: Vec<_> = (0..8)
                    .map(|_| {
                        scope.spawn(|| {
                            start.wait();
                            StateStore::open(&url).map(|_| ())
                        })
                    })
                    .collect();
                for opened in opening {
                    opened.join().unwrap().unwrap();
                }
            });
        }
    }

    /// Runs `test` on a fresh SQLite file and on a fresh PostgreSQL database.
    fn on_both(test: impl Fn(&DatabaseUrl)) {
        let dir = tempfile::tempdir().unwrap();
        test(&DatabaseUrl::Sqlite(dir.path().join("state.db")));
        let database = TestDatabase::create();
        test(&DatabaseUrl::Postgres(database.url().to_string()));
    }

    #[test]
    fn a_new_store_is_migrated_to_the_latest_schema_and_a_newer_one_is_refused() {
        on_both(|url| {
            let mut store = StateStore::open(url).unwrap();
            let latest = store.migrations().len();
            assert_eq!(store.schema_version().unwrap(), latest);
            drop(store);
            // Opening again applies nothing twice.
            let mut store = StateStore::open(url).unwrap();
            assert_eq!(store.schema_version().unwrap(), latest);
            let newer = match url {
                DatabaseUrl::Sqlite(_) => format!("PRAGMA user_version = {}", latest + 1),
                DatabaseUrl::Postgres(_) => format!("INSERT INTO schema_version VALUES ({})", latest + 1),
            };
            store.database.sql().batch(&newer).unwrap();
            drop(store);
            let error = StateStore::open(url).err().unwrap();
            assert!(error.message.contains("written by a newer Sluice"), "{error}");
        });
    }

    #[test]
    fn runs_ledger_and_cursor_round_trip() {
        on_both(|url| {
            let mut store = StateStore::open(url).unwrap();
            let now = from_millis(1_700_000_000_000);
            let run = store.begin_run("Orders", now).unwrap();
            let object = ObjectMeta {
                key: "a.csv".into(),
                size: 10,
                etag: "e1".into(),
                last_modified: from_millis(1_600_000_000_000),
            };
            let pending = ObjectOutcome {
                status: ObjectStatus::Pending,
                rows: 0,
                rejected: 0,
                bytes: 0,
                error: Some("timeout"),
                reader: Some("csv as first configured"),
                worker: None,
            };
            store.record_object("Orders", &object, pending, run, now).unwrap();
            let loaded = ObjectOutcome {
                status: ObjectStatus::Loaded,
                rows: 5,
                rejected: 1,
                bytes: 10,
                error: None,
                reader: Some("csv as configured now"),
                worker: None,
            };
            store.record_object("Orders", &object, loaded, run, now).unwrap();
            let counts = RunCounts { objects: 1, failed_objects: 0, rows: 5, rejected: 1, bytes: 10 };
            store.end_run(run, RunStatus::Succeeded, counts, None, now).unwrap();
            store.advance_cursor("Orders", object.last_modified, run, now).unwrap();
            store.advance_cursor("Orders", from_millis(0), run, now).unwrap();

            let ledger = store.ledger("Orders").unwrap();
            assert_eq!(ledger.len(), 1, "one entry per key and ETag");
            assert_eq!(
                (ledger[0].status, ledger[0].rows, ledger[0].error.as_deref(), ledger[0].reader.as_deref()),
                (ObjectStatus::Loaded, 5, None, Some("csv as configured now"))
            );
            assert_eq!(
                store.cursor("Orders").unwrap(),
                Some(object.last_modified),
                "the cursor never moves back"
            );
            let runs = store.runs("Orders").unwrap();
            assert_eq!((runs[0].status, runs[0].counts), (RunStatus::Succeeded, counts));

            // A run left running by a killed process is recorded as interrupted when the next begins.
            let killed = store.begin_run("Orders", now).unwrap();
            store.begin_run("Orders", now).unwrap();
            let interrupted = store.runs("Orders").unwrap().into_iter().find(|r| r.id == killed).unwrap();
            assert_eq!(interrupted.status, RunStatus::Interrupted);
            assert!(StateStore::open_read_only(url).unwrap().is_some());
        });
    }
}
