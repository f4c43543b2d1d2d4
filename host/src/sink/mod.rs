//! Sinks: where records go. A tables sink writes each object's rows, its rejected rows and a marker that
//! the object is loaded in one transaction, so a crash leaves an object either wholly loaded and marked,
//! or not there at all. The markers are the truth the runner squares the state ledger with.

mod column;
mod custom;
mod delta;
mod postgres;
mod sqlite;
mod stripe;

pub(crate) use custom::CustomSink;
pub use custom::{RecordSink, RecordWriter};
pub use delta::{DeltaTables, check_location as check_delta_location};
pub use postgres::{PostgresTables, schema_of};
pub use sqlite::SqliteTables;
pub use stripe::{Outgoing, StripeSink, StripeTarget};

use crate::batch::{RecordBatch, Value};
use crate::batch::{RejectStage, RejectedRow};
use crate::config::{
    DEFAULT_COMMIT_INTERVAL, DEFAULT_COMMIT_OBJECTS, DEFAULT_FILE_SIZE_MB, DEFAULT_VERSIONS, DatabaseUrl,
    DataflowConfig, ParquetCompression, SinkUrl, TableKind, TablePurpose, TypeConflict, WriteMode,
};
use crate::object::ObjectMeta;

/// A sink error: what failed, and where it was being written.
#[derive(Debug, thiserror::Error)]
#[error("writing {target} failed: {message}")]
pub struct SinkError {
    /// Where the records were going.
    pub target: SinkTarget,
    /// What went wrong.
    pub message: String,
    /// Whether the same object can never load into this sink as it is (more columns than the database
    /// holds): the object is marked failed, not left for the next run to try again.
    pub permanent: bool,
}

/// Where a failed write was going, as an error names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SinkTarget {
    /// A table (or, for a custom sink, the name it was registered under).
    Table(String),
    /// Stripe objects, by API path (`prices`).
    Stripe(String),
}

impl std::fmt::Display for SinkTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SinkTarget::Table(table) => write!(f, "table `{table}`"),
            SinkTarget::Stripe(object) => write!(f, "`{object}` to Stripe"),
        }
    }
}

impl SinkError {
    /// A failure writing the table (or custom sink) `table`.
    pub fn table(table: impl Into<String>, message: impl Into<String>) -> SinkError {
        SinkError { target: SinkTarget::Table(table.into()), message: message.into(), permanent: false }
    }

    /// A failure writing Stripe's `object`s.
    pub fn stripe(object: impl Into<String>, message: impl Into<String>) -> SinkError {
        SinkError { target: SinkTarget::Stripe(object.into()), message: message.into(), permanent: false }
    }

    /// The same failure, as one the object meets however often it is tried.
    pub fn permanent(self) -> SinkError {
        SinkError { permanent: true, ..self }
    }
}

/// An object version a tables sink holds committed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommittedObject {
    /// The object's key.
    pub key: String,
    /// The version's ETag.
    pub etag: String,
    /// Its size in bytes.
    pub size: u64,
    /// When it was last written.
    pub last_modified: std::time::SystemTime,
    /// Rows loaded from it.
    pub rows: u64,
    /// Rows of it refused.
    pub rejected: u64,
    /// The run that loaded it.
    pub run_id: i64,
}

impl CommittedObject {
    /// `object`'s version as committed by run `run_id`, with `rows` loaded and `rejected` refused.
    pub fn of(object: &ObjectMeta, rows: u64, rejected: u64, run_id: i64) -> CommittedObject {
        CommittedObject {
            key: object.key.clone(),
            etag: object.etag.clone(),
            size: object.size,
            last_modified: object.last_modified,
            rows,
            rejected,
            run_id,
        }
    }
}

/// A table a dataflow writes, and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableSpec {
    /// The table's name.
    pub name: String,
    /// How a run's rows meet the table's.
    pub mode: WriteMode,
    /// The columns `merge` matches on.
    pub key: Vec<String>,
    /// Runs kept for rollback.
    pub versions: u32,
    /// What a value its column's type cannot hold does.
    pub on_type_conflict: TypeConflict,
    /// How a Delta table is written (other sinks take no notice).
    pub delta: DeltaWriting,
}

/// How a Delta table is written: its files, its commits, and what it is for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeltaWriting {
    /// Bytes a Parquet file is closed at.
    pub file_size: u64,
    /// A commit holds at most this many objects.
    pub commit_objects: usize,
    /// A commit is made once its oldest object waited this long.
    pub commit_interval: std::time::Duration,
    /// The Parquet files' compression.
    pub compression: ParquetCompression,
    /// What the table is for, kept in its properties for catalogs and `dataflows --tables`.
    pub purpose: TablePurpose,
    /// Data or metadata, kept beside the purpose.
    pub kind: TableKind,
    /// The columns the table is partitioned by (a folder per value, `country=NO/`), set when it is made.
    pub partition_by: Vec<String>,
}

impl TableSpec {
    /// The table the dataflow `name` writes, and how, as its configuration says.
    pub fn of(dataflow: &DataflowConfig, name: &str) -> TableSpec {
        let sink = &dataflow.sink;
        TableSpec {
            name: dataflow.table_name(name),
            mode: sink.mode,
            key: sink.key.clone(),
            versions: sink.versions.unwrap_or(DEFAULT_VERSIONS),
            on_type_conflict: sink.on_type_conflict,
            delta: DeltaWriting {
                file_size: sink.file_size_mb.unwrap_or(DEFAULT_FILE_SIZE_MB) << 20,
                commit_objects: sink.commit_objects.unwrap_or(DEFAULT_COMMIT_OBJECTS).max(1),
                commit_interval: sink.commit_interval.unwrap_or(DEFAULT_COMMIT_INTERVAL),
                compression: sink.compression,
                purpose: sink.purpose,
                kind: sink.table_kind,
                partition_by: sink.partition_by.clone(),
            },
        }
    }

    /// The spec of `table`, one of the Stripe source `name`'s tables: merged on `id`, with the dataflow's
    /// versions and type-conflict rule.
    pub fn of_stripe_table(dataflow: &DataflowConfig, name: &str, table: String) -> TableSpec {
        TableSpec {
            name: table,
            mode: WriteMode::Merge,
            key: vec!["id".to_string()],
            ..TableSpec::of(dataflow, name)
        }
    }

    /// The write mode and merge key as a sink records them in `_sluice_tables`.
    fn recorded_form(&self) -> (String, String) {
        (format!("{:?}", self.mode).to_ascii_lowercase(), self.key.join(","))
    }

    /// Refuses to merge `dataflow`'s table on another key than its rows were merged on (`recorded`: the
    /// mode and key the sink recorded; `has_table`: whether the rows are there).
    fn check_merge_key(
        &self,
        dataflow: &str,
        recorded: Option<(&str, &str)>,
        has_table: bool,
    ) -> Result<(), String> {
        let key = self.recorded_form().1;
        match recorded {
            Some(("merge", recorded_key))
                if self.mode == WriteMode::Merge && recorded_key != key && has_table =>
            {
                Err(format!(
                    "dataflow `{dataflow}` merged its rows on [{recorded_key}] and is now set to merge on [{key}], which would break the rows already loaded; remove the dataflow first (`sluice remove {dataflow}`, and the next run loads it again) or write to a new dataflow"
                ))
            }
            _ => Ok(()),
        }
    }
}

/// Logs that `dataflow`'s table was renamed from `old` to `new`, as the configuration now names it.
fn log_renamed(dataflow: &str, old: &str, new: &str) {
    tracing::info!(
        dataflow,
        from = old,
        to = new,
        "renamed the dataflow's table as the configuration now names it"
    );
}

/// What a rollback undid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RolledBack {
    /// The run whose changes were undone.
    pub run_id: i64,
    /// Rows its undoing took out of the table.
    pub rows_removed: u64,
}

/// What `sluice optimize` did to a table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Optimized {
    /// Small files merged...
    pub files_merged: usize,
    /// ... into this many.
    pub files_written: usize,
    /// Files no version within reach of a rollback refers to, deleted.
    pub files_deleted: usize,
}

/// Opens `dataflow`'s tables sink at `url`, for writing the table `spec` names.
pub fn open(url: &SinkUrl, dataflow: &str, spec: &TableSpec) -> Result<Box<dyn TableSink>, SinkError> {
    Ok(match url {
        SinkUrl::Database(DatabaseUrl::Sqlite(path)) => Box::new(SqliteTables::open(path, dataflow, spec)?),
        SinkUrl::Database(DatabaseUrl::Postgres(url)) => Box::new(PostgresTables::open(url, dataflow, spec)?),
        SinkUrl::Delta(root) => Box::new(DeltaTables::open(root, dataflow, spec)?),
    })
}

/// The rows and columns of `dataflow`'s `table` at `url`, read without changing anything; `None` where the
/// table does not exist (or cannot be read).
pub fn table_shape(url: &SinkUrl, dataflow: &str, table: &str) -> Option<(u64, usize)> {
    match url {
        SinkUrl::Database(DatabaseUrl::Sqlite(path)) => sqlite::table_shape(path, table),
        SinkUrl::Database(DatabaseUrl::Postgres(url)) => postgres::table_shape(url, dataflow, table),
        SinkUrl::Delta(root) => delta::table_shape(root, dataflow, table),
    }
}

/// A rejected row as a sink keeps it: the run that refused it, the object and line it came from, why,
/// and its raw text (up to 1 KiB).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct StoredReject {
    /// The run that rejected it.
    pub run_id: i64,
    /// The key of the object it was read from.
    pub object: String,
    /// The version of that object (its ETag).
    pub etag: String,
    /// The 1-based line of the object the row starts on.
    pub line: u64,
    /// Why it was rejected.
    pub reason: String,
    /// Its raw text, up to 1 KiB.
    pub raw: String,
    /// The step that refused it; `None` where the sink does not keep it (a Delta table, or a row
    /// rejected before stages were kept), and so where the row cannot be replayed.
    pub stage: Option<RejectStage>,
}

/// The rejected rows `scope` keeps for its `table` at `url` (of run `run` only, where given), by run,
/// object and line; read without changing anything. Empty where nothing was ever rejected.
pub fn stored_rejects(
    url: &SinkUrl,
    scope: &str,
    table: &str,
    run: Option<i64>,
) -> Result<Vec<StoredReject>, String> {
    let mut rejects = match url {
        SinkUrl::Database(DatabaseUrl::Sqlite(path)) => sqlite::stored_rejects(path, scope, run),
        SinkUrl::Database(DatabaseUrl::Postgres(url)) => postgres::stored_rejects(url, scope, run),
        SinkUrl::Delta(root) => delta::stored_rejects(root, scope, table, run),
    }?;
    rejects.sort_by(|a, b| (a.run_id, &a.object, a.line).cmp(&(b.run_id, &b.object, b.line)));
    Ok(rejects)
}

/// Two text columns, `key` and `value`, of `scope`'s `table` at `url`, read without changing anything:
/// how a Stripe diff reads the ids a results table recorded. Empty where the table or a column is not
/// there yet.
pub fn stored_pairs(
    url: &SinkUrl,
    scope: &str,
    table: &str,
    key: &str,
    value: &str,
) -> Result<Vec<(String, String)>, String> {
    match url {
        SinkUrl::Database(DatabaseUrl::Sqlite(path)) => sqlite::stored_pairs(path, table, key, value),
        SinkUrl::Database(DatabaseUrl::Postgres(url)) => {
            postgres::stored_pairs(url, scope, table, key, value)
        }
        SinkUrl::Delta(_) => Err("a Stripe sink keeps its results in a database, not in Delta tables".into()),
    }
}

/// Why a row's value cannot go into its column as the column is typed, for an object that fails on it.
fn type_conflict(line: u64, column: &str, declared: &str, value: &Value<'_>) -> String {
    format!(
        "line {line}: column `{column}` is {declared} and cannot hold {}; set `on_type_conflict = \"text\"` in the sink to widen the column to text",
        describe(value)
    )
}

/// Logs a column widened to text to hold `value`.
fn log_widened(table: &str, line: u64, column: &str, declared: &str, value: &Value<'_>) {
    tracing::warn!(
        table,
        column,
        line,
        "column `{column}` was {declared} and now is TEXT, to hold {}",
        describe(value)
    );
}

/// A value as an error message shows it.
fn describe(value: &Value<'_>) -> String {
    let shown = |text: &str| {
        let short: String = text.chars().take(40).collect();
        if short.len() < text.len() { format!("`{short}…`") } else { format!("`{short}`") }
    };
    match value {
        Value::Null => "null".to_string(),
        Value::Boolean(b) => format!("the boolean `{b}`"),
        Value::Integer(i) => format!("the integer `{i}`"),
        Value::Float(f) => format!("the number `{f}`"),
        Value::Text(text) => format!("the text {}", shown(text)),
        Value::Json(json) => format!("the JSON {}", shown(json)),
        Value::Timestamp(timestamp) => format!("the timestamp `{timestamp}`"),
    }
}

/// Why an object cannot load into a table of a database holding at most `max` columns: its records need
/// `total` columns (`lineage` of them Sluice's own), and the table's undo copy `undo` more.
fn too_many_columns(total: usize, lineage: usize, database: &str, max: usize, undo: usize) -> String {
    format!(
        "the records need a table of {total} columns ({} of the file's and {lineage} of Sluice's), and {database} holds at most {max} in a table, so at most {} of a file's (Sluice keeps a copy with {undo} more for rollback); pick fewer columns with a template, or write to another sink",
        total - lineage,
        max - lineage - undo
    )
}

/// Why a commit fenced with `token` is refused, where `newest` is the newest token the sink has recorded.
fn fenced_out(token: i64, newest: Option<i64>) -> String {
    format!(
        "this run's lease (token {token}) was taken over by another run (token {}): the object was not committed",
        newest.map_or("unknown".to_string(), |t| t.to_string())
    )
}

/// A row a sink refuses (an empty merge key, a value the database cannot hold), as a rejected row.
pub(crate) fn rejected_row(batch: &RecordBatch, row: usize, reason: String) -> RejectedRow {
    let mut raw = Vec::new();
    let _ = batch.write_json_row(row, &mut raw);
    raw.truncate(1024);
    RejectedRow {
        line: batch.line(row),
        reason,
        raw: String::from_utf8_lossy(&raw).trim_end().to_string(),
        stage: RejectStage::Sink,
    }
}

/// A sink of tables for one dataflow; `Send`, so that objects can be loaded on threads of their own.
pub trait TableSink: Send {
    /// Whether the sink keeps a marker per committed object (what [`TableSink::committed_objects`]
    /// reads), so the runner squares the ledger with them. A sink that keeps none (an embedding
    /// program's own) leaves the ledger as the record of what it holds.
    fn keeps_markers(&self) -> bool {
        true
    }
    /// Whether an object's commit may wait for a later one of the sink's commits (a Delta table commits
    /// objects in groups): the runner then squares the ledger with the markers again once the run's last
    /// commit is made, so that objects of a group that failed to commit are not left recorded as loaded.
    fn defers_commits(&self) -> bool {
        false
    }
    /// The object versions whose rows this sink holds.
    fn committed_objects(&mut self) -> Result<Vec<CommittedObject>, SinkError>;
    /// Deletes the dataflow's tables, rejected rows and markers, in one transaction; returns the rows the
    /// tables held.
    fn remove(&mut self) -> Result<u64, SinkError>;
    /// Takes the table back to where it was before the newest run that changed it: that run's rows,
    /// columns, rejected rows and markers go, in one transaction. `None` when no run is left to undo.
    fn rollback_last(&mut self) -> Result<Option<RolledBack>, SinkError>;
    /// The newest run whose changes to the table a rollback can undo, if any.
    fn newest_run(&mut self) -> Result<Option<i64>, SinkError>;
    /// Ends a run: lets go of versions beyond the newest `TableSpec::versions`, so that storage stays
    /// bounded, and readies what a rollback of the run will look up.
    fn finish_run(&mut self) -> Result<(), SinkError>;
    /// Two text columns of the table as pairs, oldest row first (`[]` before the table or either column
    /// exists): how a Stripe sink reads back the Stripe ids its results table recorded.
    fn pairs(&mut self, key: &str, value: &str) -> Result<Vec<(String, String)>, SinkError>;
    /// Why every further object would fail as the last did (Stripe refused the API key, say), where so:
    /// the run then stops instead of meeting the same refusal once per object.
    fn refuses_all(&self) -> Option<String> {
        None
    }
    /// Fences the sink's commits with a run's fencing token (`state::Lease::token`): the sink records it
    /// as its table's newest, refusing it where a newer one is recorded already, and from then on every
    /// object's commit checks in its own transaction that no newer token was recorded since, so that a run
    /// whose lease another run took over commits nothing more. A sink that keeps no markers (an embedding
    /// program's own) takes it as it is: the run then stops taking objects once it finds its lease lost.
    fn fence(&mut self, _token: i64) -> Result<(), SinkError> {
        Ok(())
    }
    /// Merges small files and deletes files that no version within `TableSpec::versions` runs refers to,
    /// where the sink keeps files (a Delta table); `None` where it has nothing of the kind.
    fn optimize(&mut self) -> Result<Option<Optimized>, SinkError> {
        Ok(None)
    }
    /// Starts writing rows of `object` tried again from its rejected rows `retried`
    /// (`sluice run --replay-rejects`); nothing is visible until [`ObjectWrite::commit`], which takes
    /// the rows tried again out of the rejects (a row rejected again comes back under `run_id`) and
    /// leaves the object's marker as its load left it. A rollback of `run_id` undoes both. By default,
    /// refused: the sink keeps no rejects a replay can take out.
    fn begin_replay<'s>(
        &'s mut self,
        _object: &ObjectMeta,
        _run_id: i64,
        _retried: &[StoredReject],
    ) -> Result<Box<dyn ObjectWrite + 's>, SinkError> {
        Err(SinkError::table(
            "",
            "this sink cannot replay rejected rows: only SQLite, PostgreSQL and Stripe sinks can (see `sluice run --replay-rejects`)",
        ))
    }
    /// Starts writing one object; nothing is visible until [`ObjectWrite::commit`].
    fn begin_object<'s>(
        &'s mut self,
        object: &ObjectMeta,
        run_id: i64,
    ) -> Result<Box<dyn ObjectWrite + 's>, SinkError>;
}

/// The rows of one object being written. Dropped without a commit, it leaves nothing behind.
pub trait ObjectWrite {
    /// Writes a batch of the object's records.
    fn write(&mut self, batch: &RecordBatch) -> Result<(), SinkError>;
    /// Writes a batch the caller is done with: a sink that keeps or forwards batches takes it without a
    /// copy. By default, as [`ObjectWrite::write`].
    fn write_owned(&mut self, batch: RecordBatch) -> Result<(), SinkError> {
        self.write(&batch)
    }
    /// Keeps rows the plugin or template refused, beside the object's records.
    fn reject(&mut self, rejects: &[RejectedRow]) -> Result<(), SinkError>;
    /// Makes the object's rows visible together with its marker.
    fn commit(self: Box<Self>) -> Result<CommittedObject, SinkError>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{TypeConflict, WriteMode};
    use sluice_testkit::TestDatabase;
    use std::time::SystemTime;

    /// `Orders`' appended table, as the fencing tests write it.
    fn orders_spec() -> TableSpec {
        TableSpec {
            name: "orders".into(),
            mode: WriteMode::Append,
            key: vec![],
            versions: 2,
            on_type_conflict: TypeConflict::Text,
            delta: DeltaWriting::default(),
        }
    }

    fn object(key: &str) -> ObjectMeta {
        ObjectMeta { key: key.into(), size: 1, etag: "e".into(), last_modified: SystemTime::now() }
    }

    /// A writer whose run's lease was taken over (a newer token fenced the table) commits nothing more,
    /// and cannot fence it back; the newer run commits.
    fn a_writer_fenced_out_by_a_newer_token_commits_nothing(url: &SinkUrl) {
        let spec = orders_spec();
        let mut old = open(url, "Orders", &spec).unwrap();
        old.fence(1).unwrap();
        old.begin_object(&object("a.csv"), 1)
            .unwrap()
            .commit()
            .expect("the holder of the newest token commits");
        old.finish_run().unwrap();
        let mut new = open(url, "Orders", &spec).unwrap();
        new.fence(2).unwrap();
        // Refused when the object begins (SQLite, whose write lock a transaction holds from its start),
        // when it commits (PostgreSQL), or when its group commits (Delta).
        let written = old.begin_object(&object("b.csv"), 1).and_then(|write| write.commit());
        let refused = written.and_then(|_| old.finish_run()).err().unwrap().to_string();
        assert!(refused.contains("taken over by another run (token 2)"), "{refused}");
        assert!(old.fence(1).is_err(), "an older token cannot fence the table back");
        new.begin_object(&object("b.csv"), 2).unwrap().commit().unwrap();
        new.finish_run().unwrap();
        let mut committed: Vec<String> =
            new.committed_objects().unwrap().into_iter().map(|c| c.key).collect();
        committed.sort();
        assert_eq!(committed, ["a.csv", "b.csv"]);
    }

    #[test]
    fn sqlite_commits_are_fenced() {
        let dir = tempfile::tempdir().unwrap();
        a_writer_fenced_out_by_a_newer_token_commits_nothing(&SinkUrl::Database(DatabaseUrl::Sqlite(
            dir.path().join("sink.db"),
        )));
    }

    #[test]
    fn delta_commits_are_fenced() {
        let dir = tempfile::tempdir().unwrap();
        a_writer_fenced_out_by_a_newer_token_commits_nothing(&SinkUrl::Delta(
            crate::config::DeltaRoot::Folder(dir.path().join("lake")),
        ));
    }

    #[test]
    fn delta_commits_on_s3_are_fenced() {
        use sluice_testkit::s3::{ACCESS_KEY, S3Server, SECRET_KEY};
        let server = S3Server::start();
        server.create_bucket("lake");
        let access = crate::aws::S3Access {
            endpoint: Some(server.endpoint().to_string()),
            access_key_id: Some(crate::config::Secret::new(ACCESS_KEY)),
            secret_access_key: Some(crate::config::Secret::new(SECRET_KEY)),
            ..Default::default()
        };
        let root = crate::config::DeltaRoot::S3 { bucket: "lake".into(), prefix: "tables".into(), access };
        a_writer_fenced_out_by_a_newer_token_commits_nothing(&SinkUrl::Delta(root));
        assert!(!server.keys("lake", "tables/").is_empty(), "the table is on the S3 server");
    }

    #[test]
    fn postgres_commits_are_fenced() {
        let database = TestDatabase::create();
        a_writer_fenced_out_by_a_newer_token_commits_nothing(&SinkUrl::Database(DatabaseUrl::Postgres(
            database.url().to_string(),
        )));
    }

    #[test]
    fn a_run_frozen_inside_a_commit_does_not_hold_the_fence_from_the_run_taking_over() {
        let database = TestDatabase::create();
        let url = SinkUrl::Database(DatabaseUrl::Postgres(database.url().to_string()));
        let spec = orders_spec();
        open(&url, "Orders", &spec).unwrap().fence(1).unwrap();
        // The old run's object commit, frozen after it read the fence FOR SHARE.
        let mut frozen = database.client();
        frozen.batch_execute("BEGIN; SELECT token FROM \"orders\"._sluice_fence FOR SHARE").unwrap();
        let started = std::time::Instant::now();
        open(&url, "Orders", &spec).unwrap().fence(2).expect("the fence is taken");
        assert!(started.elapsed() < std::time::Duration::from_secs(30), "{:?}", started.elapsed());
        assert!(frozen.batch_execute("COMMIT").is_err(), "the frozen run's session was ended");
    }
}
