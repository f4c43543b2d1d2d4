//! The tables sink on SQLite: one table per dataflow, created on the first write, a column added when a
//! batch brings a new one. Each object's rows carry where they came from (`_sluice_object`, `_sluice_line`,
//! `_sluice_run`); its rejected rows go to `_sluice_rejects`, and its marker to `_sluice_objects`, all in the
//! object's one transaction.

use super::{CommittedObject, ObjectWrite, RolledBack, SinkError, TableSink};
use crate::batch::{RecordBatch, Value};
use crate::plugin::RejectedRow;
use crate::source::ObjectMeta;
use crate::state::millis;
use rusqlite::types::Null;
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use std::path::Path;
use std::time::{Duration, SystemTime};

/// How long a write waits for another writer of the same database.
const BUSY_TIMEOUT: Duration = Duration::from_secs(60);

/// Sluice's own columns, first in every table.
const LINEAGE_COLUMNS: [&str; 3] = ["_sluice_object", "_sluice_line", "_sluice_run"];

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS _sluice_objects (
        dataflow TEXT NOT NULL,
        key TEXT NOT NULL,
        etag TEXT NOT NULL,
        size INTEGER NOT NULL,
        last_modified INTEGER NOT NULL,
        rows INTEGER NOT NULL,
        rejected INTEGER NOT NULL,
        run_id INTEGER NOT NULL,
        committed_at INTEGER NOT NULL,
        PRIMARY KEY (dataflow, key, etag)
    );
    CREATE TABLE IF NOT EXISTS _sluice_rejects (
        dataflow TEXT NOT NULL,
        object TEXT NOT NULL,
        etag TEXT NOT NULL,
        line INTEGER NOT NULL,
        reason TEXT NOT NULL,
        raw TEXT NOT NULL,
        run_id INTEGER NOT NULL
    );
    CREATE INDEX IF NOT EXISTS _sluice_rejects_by_object ON _sluice_rejects (dataflow, object);
    CREATE TABLE IF NOT EXISTS _sluice_versions (
        dataflow TEXT NOT NULL,
        run_id INTEGER NOT NULL,
        created_table INTEGER NOT NULL,
        committed_at INTEGER NOT NULL,
        PRIMARY KEY (dataflow, run_id)
    );
    CREATE TABLE IF NOT EXISTS _sluice_version_columns (
        dataflow TEXT NOT NULL,
        run_id INTEGER NOT NULL,
        name TEXT NOT NULL
    );";

/// A dataflow's table in an SQLite database.
pub struct SqliteTables {
    connection: Connection,
    dataflow: String,
    table: String,
    /// The table's columns as they are in the database, lower-cased (SQLite compares names that way);
    /// empty until the table exists.
    columns: Vec<String>,
}

impl SqliteTables {
    /// Opens (creating where missing) the database at `path` for `dataflow`, writing `table`.
    pub fn open(path: &Path, dataflow: &str, table: &str) -> Result<SqliteTables, SinkError> {
        let error = |message: String| SinkError { table: table.to_string(), message };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| error(format!("{}: {e}", parent.display())))?;
        }
        let connection = Connection::open(path).map_err(|e| error(format!("{}: {e}", path.display())))?;
        connection.busy_timeout(BUSY_TIMEOUT).map_err(|e| error(e.to_string()))?;
        // WAL: readers see committed objects while a run writes; NORMAL: a killed process loses nothing
        // committed. A 64 MiB page cache keeps index pages of a large table in memory.
        connection
            .execute_batch(&format!(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA cache_size = -65536; {SCHEMA}"
            ))
            .map_err(|e| error(format!("{}: {e}", path.display())))?;
        let mut sink = SqliteTables {
            connection,
            dataflow: dataflow.to_string(),
            table: table.to_string(),
            columns: vec![],
        };
        sink.columns = sink.existing_columns().map_err(|e| sink.error(e))?;
        Ok(sink)
    }

    fn error(&self, message: impl ToString) -> SinkError {
        SinkError { table: self.table.clone(), message: message.to_string() }
    }

    fn existing_columns(&self) -> rusqlite::Result<Vec<String>> {
        let mut statement = self.connection.prepare("SELECT name FROM pragma_table_info(?1)")?;
        let names = statement.query_map([&self.table], |row| row.get::<_, String>(0))?;
        names.map(|name| name.map(|n| n.to_ascii_lowercase())).collect()
    }
}

impl TableSink for SqliteTables {
    fn committed_objects(&mut self) -> Result<Vec<CommittedObject>, SinkError> {
        let mut statement = self
            .connection
            .prepare(
                "SELECT key, etag, size, last_modified, rows, rejected, run_id FROM _sluice_objects
                 WHERE dataflow = ?1",
            )
            .map_err(|e| self.error(e))?;
        let rows = statement
            .query_map([&self.dataflow], |row| {
                Ok(CommittedObject {
                    key: row.get(0)?,
                    etag: row.get(1)?,
                    size: row.get::<_, i64>(2)? as u64,
                    last_modified: crate::state::from_millis(row.get(3)?),
                    rows: row.get::<_, i64>(4)? as u64,
                    rejected: row.get::<_, i64>(5)? as u64,
                    run_id: row.get(6)?,
                })
            })
            .map_err(|e| self.error(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.error(e))
    }

    fn remove(&mut self) -> Result<u64, SinkError> {
        let table = self.table.clone();
        let error = |e: rusqlite::Error| SinkError { table: table.clone(), message: e.to_string() };
        let transaction =
            self.connection.transaction_with_behavior(TransactionBehavior::Immediate).map_err(error)?;
        let rows = if self.columns.is_empty() {
            0
        } else {
            let rows: i64 = transaction
                .query_row(&format!("SELECT count(*) FROM {}", quote(&self.table)), [], |row| row.get(0))
                .map_err(error)?;
            transaction.execute_batch(&format!("DROP TABLE {}", quote(&self.table))).map_err(error)?;
            rows as u64
        };
        for bookkeeping in
            ["_sluice_objects", "_sluice_rejects", "_sluice_versions", "_sluice_version_columns"]
        {
            transaction
                .execute(&format!("DELETE FROM {bookkeeping} WHERE dataflow = ?1"), [&self.dataflow])
                .map_err(error)?;
        }
        transaction.commit().map_err(error)?;
        self.columns.clear();
        Ok(rows)
    }

    fn rollback_last(&mut self) -> Result<Option<RolledBack>, SinkError> {
        let table = self.table.clone();
        let error = |e: rusqlite::Error| SinkError { table: table.clone(), message: e.to_string() };
        let transaction =
            self.connection.transaction_with_behavior(TransactionBehavior::Immediate).map_err(error)?;
        let last: Option<(i64, bool)> = transaction
            .query_row(
                "SELECT run_id, created_table FROM _sluice_versions WHERE dataflow = ?1 ORDER BY run_id DESC LIMIT 1",
                [&self.dataflow],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()
            .map_err(error)?;
        let Some((run_id, created_table)) = last else { return Ok(None) };
        let rows = if created_table {
            let rows: i64 = transaction
                .query_row(&format!("SELECT count(*) FROM {}", quote(&self.table)), [], |row| row.get(0))
                .map_err(error)?;
            transaction.execute_batch(&format!("DROP TABLE {}", quote(&self.table))).map_err(error)?;
            rows as u64
        } else {
            let rows = transaction
                .execute(&format!("DELETE FROM {} WHERE _sluice_run = ?1", quote(&self.table)), [run_id])
                .map_err(error)?;
            let added: Vec<String> = transaction
                .prepare("SELECT name FROM _sluice_version_columns WHERE dataflow = ?1 AND run_id = ?2")
                .and_then(|mut statement| {
                    statement.query_map(params![self.dataflow, run_id], |row| row.get(0))?.collect()
                })
                .map_err(error)?;
            for column in added {
                transaction
                    .execute_batch(&format!(
                        "ALTER TABLE {} DROP COLUMN {}",
                        quote(&self.table),
                        quote(&column)
                    ))
                    .map_err(error)?;
            }
            rows as u64
        };
        for bookkeeping in
            ["_sluice_objects", "_sluice_rejects", "_sluice_versions", "_sluice_version_columns"]
        {
            transaction
                .execute(
                    &format!("DELETE FROM {bookkeeping} WHERE dataflow = ?1 AND run_id = ?2"),
                    params![self.dataflow, run_id],
                )
                .map_err(error)?;
        }
        transaction.commit().map_err(error)?;
        self.columns = self.existing_columns().map_err(|e| self.error(e))?;
        Ok(Some(RolledBack { run_id, rows_removed: rows }))
    }

    fn begin_object<'s>(
        &'s mut self,
        object: &ObjectMeta,
        run_id: i64,
    ) -> Result<Box<dyn ObjectWrite + 's>, SinkError> {
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| SinkError { table: self.table.clone(), message: e.to_string() })?;
        Ok(Box::new(SqliteObject {
            transaction,
            dataflow: &self.dataflow,
            table: &self.table,
            columns: self.columns.clone(),
            committed_columns: &mut self.columns,
            created_table: false,
            added_columns: Vec::new(),
            object: object.clone(),
            run_id,
            rows: 0,
            rejected: 0,
        }))
    }
}

/// One object's rows, inside its transaction.
struct SqliteObject<'s> {
    transaction: Transaction<'s>,
    dataflow: &'s str,
    table: &'s str,
    /// The table's columns as this transaction sees them.
    columns: Vec<String>,
    /// The sink's record of the columns, updated only when the transaction commits (a table or column
    /// created by a transaction that rolls back is gone).
    committed_columns: &'s mut Vec<String>,
    /// Whether this transaction created the table, and the columns it added: what a rollback of the run
    /// takes away again.
    created_table: bool,
    added_columns: Vec<String>,
    object: ObjectMeta,
    run_id: i64,
    rows: u64,
    rejected: u64,
}

impl SqliteObject<'_> {
    fn error(&self, message: impl ToString) -> SinkError {
        SinkError { table: self.table.to_string(), message: message.to_string() }
    }

    /// Creates the table, or adds the batch's new columns to it, typed by each column's first value.
    fn fit_columns(&mut self, batch: &RecordBatch) -> Result<(), SinkError> {
        let mut seen = std::collections::HashSet::new();
        for column in batch.columns() {
            let lower = column.name().to_ascii_lowercase();
            if !seen.insert(lower.clone()) {
                return Err(self.error(format!(
                    "the records have two columns named `{}` (SQLite does not tell upper from lower case)",
                    column.name()
                )));
            }
            if LINEAGE_COLUMNS.contains(&lower.as_str()) {
                return Err(self.error(format!("column `{}` is reserved for Sluice", column.name())));
            }
        }
        let declared = |index: usize| {
            let column = &batch.columns()[index];
            let first =
                (0..batch.num_rows()).map(|row| column.value(row)).find(|v| !matches!(v, Ok(Value::Null)));
            match first {
                Some(Ok(Value::Boolean(_) | Value::Integer(_))) => "INTEGER",
                Some(Ok(Value::Float(_))) => "REAL",
                Some(Ok(Value::Text(_) | Value::Json(_))) => "TEXT",
                // All null so far: no declared type, so a later value of any kind is kept as it is.
                _ => "",
            }
        };
        if self.columns.is_empty() {
            let mut definitions = vec![
                "_sluice_object TEXT NOT NULL".into(),
                "_sluice_line INTEGER".into(),
                "_sluice_run INTEGER NOT NULL".into(),
            ];
            for (index, column) in batch.columns().iter().enumerate() {
                definitions.push(format!("{} {}", quote(column.name()), declared(index)));
            }
            let create = format!("CREATE TABLE {} ({})", quote(self.table), definitions.join(", "));
            self.transaction.execute_batch(&create).map_err(|e| self.error(e))?;
            self.created_table = true;
            self.columns.extend(LINEAGE_COLUMNS.iter().map(|c| c.to_string()));
            self.columns.extend(batch.columns().iter().map(|c| c.name().to_ascii_lowercase()));
            return Ok(());
        }
        for (index, column) in batch.columns().iter().enumerate() {
            let lower = column.name().to_ascii_lowercase();
            if !self.columns.contains(&lower) {
                let alter = format!(
                    "ALTER TABLE {} ADD COLUMN {} {}",
                    quote(self.table),
                    quote(column.name()),
                    declared(index)
                );
                self.transaction.execute_batch(&alter).map_err(|e| self.error(e))?;
                self.columns.push(lower);
                self.added_columns.push(column.name().to_string());
            }
        }
        Ok(())
    }
}

impl ObjectWrite for SqliteObject<'_> {
    fn write(&mut self, batch: &RecordBatch) -> Result<(), SinkError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.fit_columns(batch)?;
        let names: Vec<String> = LINEAGE_COLUMNS
            .iter()
            .map(|c| c.to_string())
            .chain(batch.columns().iter().map(|c| quote(c.name())))
            .collect();
        let placeholders = vec!["?"; names.len()].join(", ");
        let insert =
            format!("INSERT INTO {} ({}) VALUES ({placeholders})", quote(self.table), names.join(", "));
        let mut statement = self.transaction.prepare_cached(&insert).map_err(|e| self.error(e))?;
        let fail = |e: rusqlite::Error| SinkError { table: self.table.to_string(), message: e.to_string() };
        // Bindings stay set across executions, so the object and run are bound once per batch.
        statement.raw_bind_parameter(1, &self.object.key).map_err(fail)?;
        statement.raw_bind_parameter(3, self.run_id).map_err(fail)?;
        for row in 0..batch.num_rows() {
            statement.raw_bind_parameter(2, batch.line(row) as i64).map_err(fail)?;
            for (index, column) in batch.columns().iter().enumerate() {
                let parameter = index + 1 + LINEAGE_COLUMNS.len();
                let value = column.value(row).map_err(|e| self.error(e))?;
                match value {
                    Value::Null => statement.raw_bind_parameter(parameter, Null),
                    Value::Boolean(b) => statement.raw_bind_parameter(parameter, b as i64),
                    Value::Integer(i) => statement.raw_bind_parameter(parameter, i),
                    Value::Float(f) => statement.raw_bind_parameter(parameter, f),
                    Value::Text(s) | Value::Json(s) => statement.raw_bind_parameter(parameter, s),
                }
                .map_err(fail)?;
            }
            statement.raw_execute().map_err(fail)?;
        }
        self.rows += batch.num_rows() as u64;
        Ok(())
    }

    fn reject(&mut self, rejects: &[RejectedRow]) -> Result<(), SinkError> {
        let mut statement = self
            .transaction
            .prepare_cached(
                "INSERT INTO _sluice_rejects (dataflow, object, etag, line, reason, raw, run_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )
            .map_err(|e| self.error(e))?;
        for reject in rejects {
            statement
                .execute(params![
                    self.dataflow,
                    self.object.key,
                    self.object.etag,
                    reject.line as i64,
                    reject.reason,
                    reject.raw,
                    self.run_id
                ])
                .map_err(|e| SinkError { table: self.table.to_string(), message: e.to_string() })?;
        }
        self.rejected += rejects.len() as u64;
        Ok(())
    }

    fn commit(self: Box<Self>) -> Result<CommittedObject, SinkError> {
        let error = |e: rusqlite::Error| SinkError { table: self.table.to_string(), message: e.to_string() };
        self.transaction
            .execute(
                "INSERT INTO _sluice_objects (dataflow, key, etag, size, last_modified, rows, rejected, run_id,
                 committed_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    self.dataflow,
                    self.object.key,
                    self.object.etag,
                    self.object.size as i64,
                    millis(self.object.last_modified),
                    self.rows as i64,
                    self.rejected as i64,
                    self.run_id,
                    millis(SystemTime::now())
                ],
            )
            .map_err(error)?;
        // The run's version of the table: what it created, for a rollback to take away.
        self.transaction
            .execute(
                "INSERT INTO _sluice_versions (dataflow, run_id, created_table, committed_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (dataflow, run_id) DO UPDATE SET
                 created_table = max(created_table, excluded.created_table)",
                params![self.dataflow, self.run_id, self.created_table, millis(SystemTime::now())],
            )
            .map_err(error)?;
        for column in &self.added_columns {
            self.transaction
                .execute(
                    "INSERT INTO _sluice_version_columns (dataflow, run_id, name) VALUES (?1, ?2, ?3)",
                    params![self.dataflow, self.run_id, column],
                )
                .map_err(error)?;
        }
        let committed = CommittedObject {
            key: self.object.key.clone(),
            etag: self.object.etag.clone(),
            size: self.object.size,
            last_modified: self.object.last_modified,
            rows: self.rows,
            rejected: self.rejected,
            run_id: self.run_id,
        };
        let this = *self;
        let table = this.table.to_string();
        this.transaction.commit().map_err(|e| SinkError { table, message: e.to_string() })?;
        *this.committed_columns = this.columns;
        Ok(committed)
    }
}

/// Whether the database at `path` holds `table`; read-only, so a database that does not exist stays so.
pub fn table_exists(path: &Path, table: &str) -> bool {
    if !path.exists() {
        return false;
    }
    Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .and_then(|c| {
            c.query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
                [table],
                |row| row.get::<_, i64>(0),
            )
        })
        .is_ok_and(|count| count > 0)
}

/// An SQL identifier, quoted.
fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
