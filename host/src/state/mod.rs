//! State: runs, the object ledger and cursors, in SQLite. The schema is versioned from the first release:
//! [`MIGRATIONS`] are applied in order and `PRAGMA user_version` records how far, so a newer Sluice
//! upgrades an older state file and an older Sluice refuses a newer one.

mod lock;
mod migrations;

use crate::source::ObjectMeta;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use lock::{LockError, RunLock, is_running, lock_dataflow};
pub use migrations::MIGRATIONS;

/// How long a write waits for another process's transaction before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// A state store error: what failed and on which file.
#[derive(Debug, thiserror::Error)]
#[error("state store {}: {message}", path.display())]
pub struct StateError {
    pub path: PathBuf,
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
}

impl ObjectStatus {
    fn as_str(self) -> &'static str {
        match self {
            ObjectStatus::Loaded => "loaded",
            ObjectStatus::Failed => "failed",
            ObjectStatus::Pending => "pending",
        }
    }

    fn parse(text: &str) -> ObjectStatus {
        match text {
            "loaded" => ObjectStatus::Loaded,
            "failed" => ObjectStatus::Failed,
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
    pub key: String,
    pub etag: String,
    pub size: u64,
    pub last_modified: SystemTime,
    pub status: ObjectStatus,
    pub rows: u64,
    pub rejected: u64,
    pub error: Option<String>,
    pub run_id: i64,
}

/// What a run made of an object version, for the ledger.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ObjectOutcome<'a> {
    pub status: ObjectStatus,
    pub rows: u64,
    pub rejected: u64,
    pub error: Option<&'a str>,
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunStatus {
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
    pub objects: u64,
    pub failed_objects: u64,
    pub rows: u64,
    pub rejected: u64,
    pub bytes: u64,
}

/// A run as recorded.
#[derive(Clone, Debug, PartialEq)]
pub struct RunRecord {
    pub id: i64,
    pub dataflow: String,
    pub started_at: SystemTime,
    pub ended_at: Option<SystemTime>,
    pub status: RunStatus,
    pub counts: RunCounts,
    pub error: Option<String>,
}

/// When a dataflow was first run, and when its configuration last changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataflowRecord {
    pub created_at: SystemTime,
    pub updated_at: SystemTime,
}

/// The state database.
pub struct StateStore {
    connection: Connection,
    path: PathBuf,
}

impl StateStore {
    /// Opens (creating where missing) and migrates the state database at `path`.
    pub fn open(path: &Path) -> Result<StateStore, StateError> {
        let error = |message: String| StateError { path: path.to_path_buf(), message };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| error(e.to_string()))?;
        }
        let connection = Connection::open(path).map_err(|e| error(e.to_string()))?;
        let mut store = StateStore { connection, path: path.to_path_buf() };
        store.configure()?;
        store.migrate()?;
        Ok(store)
    }

    /// Opens an existing state database without writing to it; `None` where there is none yet.
    pub fn open_read_only(path: &Path) -> Result<Option<StateStore>, StateError> {
        if !path.exists() {
            return Ok(None);
        }
        let connection = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| StateError { path: path.to_path_buf(), message: e.to_string() })?;
        let store = StateStore { connection, path: path.to_path_buf() };
        let version = store.schema_version()?;
        if version != MIGRATIONS.len() {
            return Err(store.error(format!(
                "schema version {version}, this Sluice reads version {}; run `sluice run` once to upgrade it",
                MIGRATIONS.len()
            )));
        }
        Ok(Some(store))
    }

    fn error(&self, message: impl std::fmt::Display) -> StateError {
        StateError { path: self.path.clone(), message: message.to_string() }
    }

    fn configure(&mut self) -> Result<(), StateError> {
        self.connection.busy_timeout(BUSY_TIMEOUT).map_err(|e| self.error(e))?;
        // WAL lets readers (preview, listings) run beside a run; NORMAL is durable across a killed process.
        self.connection
            .execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;")
            .map_err(|e| self.error(e))
    }

    fn schema_version(&self) -> Result<usize, StateError> {
        self.connection
            .query_row("PRAGMA user_version", [], |row| row.get::<_, i64>(0))
            .map(|v| v as usize)
            .map_err(|e| self.error(e))
    }

    fn migrate(&mut self) -> Result<(), StateError> {
        let version = self.schema_version()?;
        if version > MIGRATIONS.len() {
            return Err(self.error(format!(
                "schema version {version} was written by a newer Sluice; this one knows up to {}",
                MIGRATIONS.len()
            )));
        }
        for (index, migration) in MIGRATIONS.iter().enumerate().skip(version) {
            let transaction = self.connection.transaction().map_err(failure(&self.path))?;
            transaction
                .execute_batch(migration)
                .and_then(|()| transaction.pragma_update(None, "user_version", index as i64 + 1))
                .and_then(|()| transaction.commit())
                .map_err(|e| StateError {
                    path: self.path.clone(),
                    message: format!("migration {} failed: {e}", index + 1),
                })?;
        }
        Ok(())
    }

    /// Records the start of a run. Runs of the dataflow still marked running were cut off (the process was
    /// killed) and are recorded as interrupted.
    pub fn begin_run(&mut self, dataflow: &str, now: SystemTime) -> Result<i64, StateError> {
        let fail = failure(&self.path);
        let transaction = self.connection.transaction().map_err(&fail)?;
        transaction
            .execute(
                "UPDATE runs SET status = 'interrupted', error = 'the process stopped before the run ended'
                 WHERE dataflow = ?1 AND status = 'running'",
                [dataflow],
            )
            .and_then(|_| {
                transaction.execute(
                    "INSERT INTO runs (dataflow, started_at, status) VALUES (?1, ?2, 'running')",
                    params![dataflow, millis(now)],
                )
            })
            .map_err(&fail)?;
        let id = transaction.last_insert_rowid();
        transaction.commit().map_err(&fail)?;
        Ok(id)
    }

    /// Runs one statement that changes the state.
    fn execute(&self, sql: &str, params: impl rusqlite::Params) -> Result<(), StateError> {
        self.connection.execute(sql, params).map(drop).map_err(|e| self.error(e))
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
            params![dataflow, millis(now), config_hash],
        )
    }

    /// When `dataflow` was created and last updated, if it has run.
    pub fn dataflow_record(&self, dataflow: &str) -> Result<Option<DataflowRecord>, StateError> {
        self.connection
            .query_row("SELECT created_at, updated_at FROM dataflows WHERE name = ?1", [dataflow], |row| {
                Ok(DataflowRecord {
                    created_at: from_millis(row.get(0)?),
                    updated_at: from_millis(row.get(1)?),
                })
            })
            .optional()
            .map_err(|e| self.error(e))
    }

    /// Forgets everything about `dataflow`: its runs, ledger, cursor and record, in one transaction.
    pub fn forget_dataflow(&mut self, dataflow: &str) -> Result<(), StateError> {
        let fail = failure(&self.path);
        let transaction = self.connection.transaction().map_err(&fail)?;
        for table in ["objects", "cursors", "runs"] {
            transaction
                .execute(&format!("DELETE FROM {table} WHERE dataflow = ?1"), [dataflow])
                .map_err(&fail)?;
        }
        transaction.execute("DELETE FROM dataflows WHERE name = ?1", [dataflow]).map_err(&fail)?;
        transaction.commit().map_err(&fail)
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
        self.execute(
            "UPDATE runs SET ended_at = ?2, status = ?3, objects = ?4, failed_objects = ?5, rows = ?6,
                 rejected = ?7, bytes = ?8, error = ?9 WHERE id = ?1",
            params![
                run_id,
                millis(now),
                status.as_str(),
                counts.objects as i64,
                counts.failed_objects as i64,
                counts.rows as i64,
                counts.rejected as i64,
                counts.bytes as i64,
                error
            ],
        )
    }

    /// Records that a rollback undid a run.
    pub fn mark_rolled_back(&mut self, run_id: i64) -> Result<(), StateError> {
        self.execute("UPDATE runs SET status = 'rolled back' WHERE id = ?1", [run_id])
    }

    /// The runs of a dataflow, newest first.
    pub fn runs(&self, dataflow: &str) -> Result<Vec<RunRecord>, StateError> {
        let mut statement = self
            .connection
            .prepare(
                "SELECT id, dataflow, started_at, ended_at, status, objects, failed_objects, rows, rejected,
                 bytes, error FROM runs WHERE dataflow = ?1 ORDER BY id DESC",
            )
            .map_err(|e| self.error(e))?;
        let rows = statement
            .query_map([dataflow], |row| {
                Ok(RunRecord {
                    id: row.get(0)?,
                    dataflow: row.get(1)?,
                    started_at: from_millis(row.get(2)?),
                    ended_at: row.get::<_, Option<i64>>(3)?.map(from_millis),
                    status: RunStatus::parse(&row.get::<_, String>(4)?),
                    counts: RunCounts {
                        objects: row.get::<_, i64>(5)? as u64,
                        failed_objects: row.get::<_, i64>(6)? as u64,
                        rows: row.get::<_, i64>(7)? as u64,
                        rejected: row.get::<_, i64>(8)? as u64,
                        bytes: row.get::<_, i64>(9)? as u64,
                    },
                    error: row.get(10)?,
                })
            })
            .map_err(|e| self.error(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.error(e))
    }

    /// Every version of every object the dataflow has recorded.
    pub fn ledger(&self, dataflow: &str) -> Result<Vec<LedgerEntry>, StateError> {
        let mut statement = self
            .connection
            .prepare(
                "SELECT key, etag, size, last_modified, status, rows, rejected, error, run_id
                 FROM objects WHERE dataflow = ?1 ORDER BY key, updated_at",
            )
            .map_err(|e| self.error(e))?;
        let rows = statement
            .query_map([dataflow], |row| {
                Ok(LedgerEntry {
                    key: row.get(0)?,
                    etag: row.get(1)?,
                    size: row.get::<_, i64>(2)? as u64,
                    last_modified: from_millis(row.get(3)?),
                    status: ObjectStatus::parse(&row.get::<_, String>(4)?),
                    rows: row.get::<_, i64>(5)? as u64,
                    rejected: row.get::<_, i64>(6)? as u64,
                    error: row.get(7)?,
                    run_id: row.get(8)?,
                })
            })
            .map_err(|e| self.error(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.error(e))
    }

    /// Records how an object version stands.
    pub fn record_object(
        &mut self,
        dataflow: &str,
        object: &ObjectMeta,
        outcome: ObjectOutcome<'_>,
        run_id: i64,
        now: SystemTime,
    ) -> Result<(), StateError> {
        let ObjectOutcome { status, rows, rejected, error } = outcome;
        self.execute(
            "INSERT INTO objects (dataflow, key, etag, size, last_modified, status, rows, rejected, error,
                 run_id, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
                 ON CONFLICT (dataflow, key, etag) DO UPDATE SET size = excluded.size,
                 last_modified = excluded.last_modified, status = excluded.status, rows = excluded.rows,
                 rejected = excluded.rejected, error = excluded.error, run_id = excluded.run_id,
                 updated_at = excluded.updated_at",
            params![
                dataflow,
                object.key,
                object.etag,
                object.size as i64,
                millis(object.last_modified),
                status.as_str(),
                rows as i64,
                rejected as i64,
                error,
                run_id,
                millis(now)
            ],
        )
    }

    /// The dataflow's cursor: the newest LastModified up to which every object is settled.
    pub fn cursor(&self, dataflow: &str) -> Result<Option<SystemTime>, StateError> {
        self.connection
            .query_row("SELECT last_modified FROM cursors WHERE dataflow = ?1", [dataflow], |row| {
                row.get::<_, i64>(0)
            })
            .optional()
            .map(|value| value.map(from_millis))
            .map_err(|e| self.error(e))
    }

    /// Forgets object versions the ledger had as loaded but the sink does not hold, and moves the cursor
    /// back before the oldest of them, so that the next run imports them again.
    pub fn forget_objects(&mut self, dataflow: &str, objects: &[LedgerEntry]) -> Result<(), StateError> {
        let Some(oldest) = objects.iter().map(|o| o.last_modified).min() else { return Ok(()) };
        let fail = failure(&self.path);
        let transaction = self.connection.transaction().map_err(&fail)?;
        for object in objects {
            transaction
                .execute(
                    "DELETE FROM objects WHERE dataflow = ?1 AND key = ?2 AND etag = ?3",
                    params![dataflow, object.key, object.etag],
                )
                .map_err(&fail)?;
        }
        transaction
            .execute(
                "UPDATE cursors SET last_modified = ?2 WHERE dataflow = ?1 AND last_modified >= ?2",
                params![dataflow, millis(oldest) - 1],
            )
            .map_err(&fail)?;
        transaction.commit().map_err(&fail)
    }

    /// Moves the cursor; it never moves back.
    pub fn advance_cursor(
        &mut self,
        dataflow: &str,
        cursor: SystemTime,
        run_id: i64,
        now: SystemTime,
    ) -> Result<(), StateError> {
        self.execute(
            "INSERT INTO cursors (dataflow, last_modified, run_id, updated_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (dataflow) DO UPDATE SET last_modified = excluded.last_modified,
                 run_id = excluded.run_id, updated_at = excluded.updated_at
                 WHERE excluded.last_modified > cursors.last_modified",
            params![dataflow, millis(cursor), run_id, millis(now)],
        )
    }
}

/// Turns a database error into a state error about the file at `path`.
fn failure(path: &Path) -> impl Fn(rusqlite::Error) -> StateError + '_ {
    move |e| StateError { path: path.to_path_buf(), message: e.to_string() }
}

/// Milliseconds since 1970, the unit times are stored in.
pub fn millis(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => after.as_millis() as i64,
        Err(before) => -(before.duration().as_millis() as i64),
    }
}

pub fn from_millis(millis: i64) -> SystemTime {
    if millis >= 0 {
        UNIX_EPOCH + Duration::from_millis(millis as u64)
    } else {
        UNIX_EPOCH - Duration::from_millis(millis.unsigned_abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_store_is_migrated_to_the_latest_schema_and_a_newer_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let store = StateStore::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), MIGRATIONS.len());
        drop(store);
        // Opening again applies nothing twice.
        let store = StateStore::open(&path).unwrap();
        store.connection.pragma_update(None, "user_version", MIGRATIONS.len() as i64 + 1).unwrap();
        drop(store);
        let error = StateStore::open(&path).err().unwrap();
        assert!(error.message.contains("written by a newer Sluice"), "{error}");
    }

    #[test]
    fn runs_ledger_and_cursor_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = StateStore::open(&dir.path().join("state.db")).unwrap();
        let now = from_millis(1_700_000_000_000);
        let run = store.begin_run("Orders", now).unwrap();
        let object = ObjectMeta {
            key: "a.csv".into(),
            size: 10,
            etag: "e1".into(),
            last_modified: from_millis(1_600_000_000_000),
        };
        let pending =
            ObjectOutcome { status: ObjectStatus::Pending, rows: 0, rejected: 0, error: Some("timeout") };
        store.record_object("Orders", &object, pending, run, now).unwrap();
        let loaded = ObjectOutcome { status: ObjectStatus::Loaded, rows: 5, rejected: 1, error: None };
        store.record_object("Orders", &object, loaded, run, now).unwrap();
        let counts = RunCounts { objects: 1, failed_objects: 0, rows: 5, rejected: 1, bytes: 10 };
        store.end_run(run, RunStatus::Succeeded, counts, None, now).unwrap();
        store.advance_cursor("Orders", object.last_modified, run, now).unwrap();
        store.advance_cursor("Orders", from_millis(0), run, now).unwrap();

        let ledger = store.ledger("Orders").unwrap();
        assert_eq!(ledger.len(), 1, "one entry per key and ETag");
        assert_eq!(
            (ledger[0].status, ledger[0].rows, ledger[0].error.as_deref()),
            (ObjectStatus::Loaded, 5, None)
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
    }
}
