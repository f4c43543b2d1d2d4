//! The tables sink on SQLite: one table per dataflow, created on the first write, a column added when a
//! batch brings a new one. Each object's rows carry where they came from (`_sluice_object`, `_sluice_line`,
//! `_sluice_run`); its rejected rows go to `_sluice_rejects`, and its marker to `_sluice_objects`, all in the
//! object's one transaction.
//!
//! Versions: every run that changes the table leaves a row in `_sluice_versions` (and the columns it added
//! in `_sluice_version_columns`). Rows a run replaced or merged over are moved, with their rowids, into the
//! table's undo log `_sluice_undo_TABLE`. A rollback deletes the run's rows, puts the moved rows back under
//! their rowids and drops the columns the run added: the earlier table exactly, at the cost of what the run
//! changed rather than of a reload.

mod object;

use super::{
    CommittedObject, ObjectWrite, RolledBack, SinkError, StoredReject, TableSink, TableSpec, log_renamed,
};
use crate::batch::RejectStage;
use crate::object::ObjectMeta;
use object::SqliteObject;
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use std::path::Path;
use std::time::Duration;

/// How long a write waits for another writer of the same database.
const BUSY_TIMEOUT: Duration = Duration::from_secs(60);

/// Sluice's own columns, first in every table.
const LINEAGE_COLUMNS: [&str; 3] = ["_sluice_object", "_sluice_line", "_sluice_run"];
/// The most columns SQLite holds in a table: its default `SQLITE_MAX_COLUMN`, which the bundled build keeps.
const MAX_COLUMNS: usize = 2000;
/// The columns a table's undo copy has beyond the table's own (`_sluice_removed_by`, `_sluice_rowid`).
const UNDO_EXTRA_COLUMNS: usize = 2;

/// Sluice's bookkeeping tables, each with a `dataflow` column.
const BOOKKEEPING: [&str; 5] = [
    "_sluice_objects",
    "_sluice_rejects",
    "_sluice_versions",
    "_sluice_version_columns",
    "_sluice_version_types",
];

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
        run_id INTEGER NOT NULL,
        -- The step that refused the row (parse, template, sink); empty where stored before stages were.
        stage TEXT NOT NULL DEFAULT '',
        -- The run that tried the row again: it is no longer rejected (or was rejected again by that run).
        replayed_by INTEGER
    );
    CREATE INDEX IF NOT EXISTS _sluice_rejects_by_object ON _sluice_rejects (dataflow, object);
    CREATE TABLE IF NOT EXISTS _sluice_versions (
        dataflow TEXT NOT NULL,
        run_id INTEGER NOT NULL,
        created_table INTEGER NOT NULL,
        -- Every row the run inserted has a rowid above this.
        rowid_start INTEGER NOT NULL,
        committed_at INTEGER NOT NULL,
        PRIMARY KEY (dataflow, run_id)
    );
    CREATE TABLE IF NOT EXISTS _sluice_version_columns (
        dataflow TEXT NOT NULL,
        run_id INTEGER NOT NULL,
        name TEXT NOT NULL
    );
    -- A column a run widened to text, and its type before.
    CREATE TABLE IF NOT EXISTS _sluice_version_types (
        dataflow TEXT NOT NULL,
        run_id INTEGER NOT NULL,
        name TEXT NOT NULL,
        previous_type TEXT NOT NULL
    );
    -- The newest fencing token of a run that wrote the dataflow's table: older ones commit nothing.
    CREATE TABLE IF NOT EXISTS _sluice_fences (
        dataflow TEXT PRIMARY KEY,
        token INTEGER NOT NULL
    );
    CREATE TABLE IF NOT EXISTS _sluice_tables (
        dataflow TEXT PRIMARY KEY,
        table_name TEXT NOT NULL,
        mode TEXT NOT NULL,
        key TEXT NOT NULL
    );";

/// A dataflow's table in an SQLite database.
pub struct SqliteTables {
    connection: Connection,
    dataflow: String,
    spec: TableSpec,
    /// The table's columns as they are in the database, lower-cased (SQLite compares names that way);
    /// empty until the table exists.
    columns: Vec<String>,
    /// The fencing token its commits check, once fenced.
    fence: Option<i64>,
}

impl SqliteTables {
    /// Opens (creating where missing) the database at `path` for `dataflow`, writing the table `spec`
    /// names. A merge key other than the one the table's rows were merged on is refused.
    pub fn open(path: &Path, dataflow: &str, spec: &TableSpec) -> Result<SqliteTables, SinkError> {
        let error = |message: String| SinkError::table(spec.name.clone(), message);
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| error(format!("{}: {e}", parent.display())))?;
        }
        let connection =
            crate::sqlite::open(path, BUSY_TIMEOUT).map_err(|e| error(format!("{}: {e}", path.display())))?;
        // A 64 MiB page cache keeps index pages of a large table in memory.
        connection
            .execute_batch(&format!("PRAGMA cache_size = -65536; {SCHEMA}"))
            .and_then(|()| add_replay_columns(&connection))
            .map_err(|e| error(format!("{}: {e}", path.display())))?;
        let mut sink = SqliteTables {
            connection,
            dataflow: dataflow.to_string(),
            spec: spec.clone(),
            columns: vec![],
            fence: None,
        };
        sink.follow_rename()?;
        sink.columns = sink.existing_columns().map_err(|e| sink.error(e))?;
        sink.record_spec()?;
        Ok(sink)
    }

    fn error(&self, message: impl ToString) -> SinkError {
        SinkError::table(self.spec.name.clone(), message.to_string())
    }

    fn existing_columns(&self) -> rusqlite::Result<Vec<String>> {
        let mut statement = self.connection.prepare("SELECT name FROM pragma_table_info(?1)")?;
        let names = statement.query_map([&self.spec.name], |row| row.get::<_, String>(0))?;
        names.map(|name| name.map(|n| n.to_ascii_lowercase())).collect()
    }

    /// Renames the table (and its undo log) when the configuration gave it a new name, so its rows, versions
    /// and markers stay together.
    fn follow_rename(&mut self) -> Result<(), SinkError> {
        let old: Option<String> = self
            .connection
            .query_row("SELECT table_name FROM _sluice_tables WHERE dataflow = ?1", [&self.dataflow], |row| {
                row.get(0)
            })
            .optional()
            .map_err(|e| self.error(e))?;
        let Some(old) = old.filter(|old| *old != self.spec.name) else { return Ok(()) };
        let (new, dataflow) = (self.spec.name.clone(), self.dataflow.clone());
        let transaction = self.write_transaction()?;
        let renamed = (|| {
            for (from, to) in [(old.clone(), new.clone()), (undo_table(&old), undo_table(&new))] {
                if has_table(&transaction, &from)? {
                    transaction.execute_batch(&format!(
                        "ALTER TABLE {} RENAME TO {}",
                        quote(&from),
                        quote(&to)
                    ))?;
                }
            }
            transaction.execute(
                "UPDATE _sluice_tables SET table_name = ?2 WHERE dataflow = ?1",
                params![dataflow, new],
            )?;
            transaction.commit()
        })();
        renamed.map_err(|e| {
            SinkError::table(new.clone(), format!("renaming table `{old}` to `{new}` failed: {e}"))
        })?;
        log_renamed(&self.dataflow, &old, &new);
        Ok(())
    }

    /// Records how the table is written; a table that holds rows merged on one key is not merged on
    /// another, since its rows would no longer be unique by it.
    fn record_spec(&self) -> Result<(), SinkError> {
        let (mode, key) = self.spec.recorded_form();
        let recorded: Option<(String, String)> = self
            .connection
            .query_row("SELECT mode, key FROM _sluice_tables WHERE dataflow = ?1", [&self.dataflow], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
            .optional()
            .map_err(|e| self.error(e))?;
        let recorded = recorded.as_ref().map(|(mode, key)| (mode.as_str(), key.as_str()));
        self.spec
            .check_merge_key(&self.dataflow, recorded, !self.columns.is_empty())
            .map_err(|e| self.error(e))?;
        self.connection
            .execute(
                "INSERT INTO _sluice_tables (dataflow, table_name, mode, key) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (dataflow) DO UPDATE SET table_name = excluded.table_name, mode = excluded.mode,
                 key = excluded.key",
                params![self.dataflow, self.spec.name, mode, key],
            )
            .map(drop)
            .map_err(|e| self.error(e))
    }

    /// A write transaction, taken at once so that two writers queue rather than deadlock.
    fn write_transaction(&mut self) -> Result<Transaction<'_>, SinkError> {
        let table = self.spec.name.clone();
        self.connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| SinkError::table(table, e.to_string()))
    }
}

impl TableSink for SqliteTables {
    fn newest_run(&mut self) -> Result<Option<i64>, SinkError> {
        self.connection
            .query_row(
                "SELECT max(run_id) FROM _sluice_versions WHERE dataflow = ?1",
                [&self.dataflow],
                |row| row.get(0),
            )
            .map_err(|e| self.error(e))
    }

    fn pairs(&mut self, key: &str, value: &str) -> Result<Vec<(String, String)>, SinkError> {
        if ![key, value].iter().all(|column| self.columns.contains(&column.to_ascii_lowercase())) {
            return Ok(Vec::new());
        }
        let sql =
            format!("SELECT {}, {} FROM {} ORDER BY rowid", quote(key), quote(value), quote(&self.spec.name));
        let mut statement = self.connection.prepare(&sql).map_err(|e| self.error(e))?;
        let rows =
            statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?))).map_err(|e| self.error(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.error(e))
    }

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
                    last_modified: crate::time::from_millis(row.get(3)?),
                    rows: row.get::<_, i64>(4)? as u64,
                    rejected: row.get::<_, i64>(5)? as u64,
                    run_id: row.get(6)?,
                })
            })
            .map_err(|e| self.error(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.error(e))
    }

    fn remove(&mut self) -> Result<u64, SinkError> {
        let (table, dataflow) = (self.spec.name.clone(), self.dataflow.clone());
        let error = |e: rusqlite::Error| SinkError::table(table.clone(), e.to_string());
        let transaction = self.write_transaction()?;
        let rows = if has_table(&transaction, &table).map_err(error)? {
            let rows = count_rows(&transaction, &table).map_err(error)?;
            transaction
                .execute_batch(&format!(
                    "DROP TABLE {}; DROP TABLE IF EXISTS {}",
                    quote(&table),
                    quote(&undo_table(&table))
                ))
                .map_err(error)?;
            rows
        } else {
            0
        };
        for bookkeeping in BOOKKEEPING.iter().chain(&["_sluice_tables"]) {
            transaction
                .execute(&format!("DELETE FROM {bookkeeping} WHERE dataflow = ?1"), [&dataflow])
                .map_err(error)?;
        }
        transaction.commit().map_err(error)?;
        self.columns.clear();
        Ok(rows)
    }

    fn rollback_last(&mut self) -> Result<Option<RolledBack>, SinkError> {
        let (table, dataflow) = (self.spec.name.clone(), self.dataflow.clone());
        let error = |e: rusqlite::Error| SinkError::table(table.clone(), e.to_string());
        let transaction = self.write_transaction()?;
        let last: Option<(i64, bool, i64)> = transaction
            .query_row(
                "SELECT run_id, created_table, rowid_start FROM _sluice_versions WHERE dataflow = ?1
                 ORDER BY run_id DESC LIMIT 1",
                [&dataflow],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
            .optional()
            .map_err(error)?;
        let Some((run_id, created_table, rowid_start)) = last else { return Ok(None) };
        let undo = undo_table(&table);
        let rows_removed = if created_table {
            let rows = count_rows(&transaction, &table).map_err(error)?;
            transaction
                .execute_batch(&format!(
                    "DROP TABLE {}; DROP TABLE IF EXISTS {}",
                    quote(&table),
                    quote(&undo)
                ))
                .map_err(error)?;
            rows
        } else {
            // The run's rows all lie above its rowid start: a range of the table's own b-tree, so no index
            // is kept for them.
            let rows = transaction
                .execute(
                    &format!("DELETE FROM {} WHERE rowid > ?1 AND _sluice_run = ?2", quote(&table)),
                    params![rowid_start, run_id],
                )
                .map_err(error)?;
            if has_table(&transaction, &undo).map_err(error)? {
                // The rows the run replaced or merged over go back, under their old rowids.
                let columns: Vec<String> =
                    column_names(&transaction, &table).map_err(error)?.iter().map(|c| quote(c)).collect();
                let columns = columns.join(", ");
                transaction
                    .execute(
                        &format!(
                            "INSERT INTO {} (rowid, {columns}) SELECT _sluice_rowid, {columns} FROM {} WHERE _sluice_removed_by = ?1",
                            quote(&table),
                            quote(&undo)
                        ),
                        [run_id],
                    )
                    .map_err(error)?;
                transaction
                    .execute(&format!("DELETE FROM {} WHERE _sluice_removed_by = ?1", quote(&undo)), [run_id])
                    .map_err(error)?;
            }
            let widened: Vec<(String, String)> = transaction
                .prepare("SELECT name, previous_type FROM _sluice_version_types WHERE dataflow = ?1 AND run_id = ?2")
                .and_then(|mut statement| {
                    statement.query_map(params![dataflow, run_id], |row| Ok((row.get(0)?, row.get(1)?)))?.collect()
                })
                .map_err(error)?;
            for (column, previous) in widened {
                retype_column(&transaction, &table, &column, &previous).map_err(error)?;
            }
            let added: Vec<String> = transaction
                .prepare("SELECT name FROM _sluice_version_columns WHERE dataflow = ?1 AND run_id = ?2")
                .and_then(|mut statement| {
                    statement.query_map(params![dataflow, run_id], |row| row.get(0))?.collect()
                })
                .map_err(error)?;
            let undo_columns = column_names(&transaction, &undo).map_err(error)?;
            for column in added {
                transaction
                    .execute_batch(&format!("ALTER TABLE {} DROP COLUMN {}", quote(&table), quote(&column)))
                    .map_err(error)?;
                if undo_columns.iter().any(|c| c.eq_ignore_ascii_case(&column)) {
                    transaction
                        .execute_batch(&format!(
                            "ALTER TABLE {} DROP COLUMN {}",
                            quote(&undo),
                            quote(&column)
                        ))
                        .map_err(error)?;
                }
            }
            rows as u64
        };
        for bookkeeping in BOOKKEEPING {
            transaction
                .execute(
                    &format!("DELETE FROM {bookkeeping} WHERE dataflow = ?1 AND run_id = ?2"),
                    params![dataflow, run_id],
                )
                .map_err(error)?;
        }
        // Rows the run replayed are rejected again, as they were before it.
        transaction
            .execute(
                "UPDATE _sluice_rejects SET replayed_by = NULL WHERE dataflow = ?1 AND replayed_by = ?2",
                params![dataflow, run_id],
            )
            .map_err(error)?;
        transaction.commit().map_err(error)?;
        self.columns = self.existing_columns().map_err(|e| self.error(e))?;
        Ok(Some(RolledBack { run_id, rows_removed }))
    }

    fn finish_run(&mut self) -> Result<(), SinkError> {
        let (table, dataflow) = (self.spec.name.clone(), self.dataflow.clone());
        let keep = i64::from(self.spec.versions);
        let error = |e: rusqlite::Error| SinkError::table(table.clone(), e.to_string());
        let transaction = self.write_transaction()?;
        let oldest_kept: Option<i64> = transaction
            .query_row(
                "SELECT run_id FROM _sluice_versions WHERE dataflow = ?1 ORDER BY run_id DESC LIMIT 1 OFFSET ?2",
                params![dataflow, keep - 1],
                |row| row.get(0),
            )
            .optional()
            .map_err(error)?;
        let Some(oldest_kept) = oldest_kept else { return Ok(()) };
        for bookkeeping in ["_sluice_versions", "_sluice_version_columns", "_sluice_version_types"] {
            transaction
                .execute(
                    &format!("DELETE FROM {bookkeeping} WHERE dataflow = ?1 AND run_id < ?2"),
                    params![dataflow, oldest_kept],
                )
                .map_err(error)?;
        }
        let undo = undo_table(&table);
        if has_table(&transaction, &undo).map_err(error)? {
            transaction
                .execute(
                    &format!("DELETE FROM {} WHERE _sluice_removed_by < ?1", quote(&undo)),
                    [oldest_kept],
                )
                .map_err(error)?;
        }
        transaction.commit().map_err(error)
    }

    fn fence(&mut self, token: i64) -> Result<(), SinkError> {
        let dataflow = self.dataflow.clone();
        let transaction = self.write_transaction()?;
        let newest = transaction
            .execute(
                "INSERT INTO _sluice_fences (dataflow, token) VALUES (?1, ?2) ON CONFLICT (dataflow)
                 DO UPDATE SET token = excluded.token WHERE excluded.token >= _sluice_fences.token",
                params![dataflow, token],
            )
            .and_then(|_| newest_fence(&transaction, &dataflow))
            .and_then(|newest| transaction.commit().map(|()| newest))
            .map_err(|e| self.error(e))?;
        if newest != Some(token) {
            return Err(self.error(super::fenced_out(token, newest)));
        }
        self.fence = Some(token);
        Ok(())
    }

    fn begin_object<'s>(
        &'s mut self,
        object: &ObjectMeta,
        run_id: i64,
    ) -> Result<Box<dyn ObjectWrite + 's>, SinkError> {
        Ok(Box::new(self.begin(object, run_id, None)?))
    }

    fn begin_replay<'s>(
        &'s mut self,
        object: &ObjectMeta,
        run_id: i64,
        retried: &[StoredReject],
    ) -> Result<Box<dyn ObjectWrite + 's>, SinkError> {
        Ok(Box::new(self.begin(object, run_id, Some(retried.to_vec()))?))
    }
}

impl SqliteTables {
    /// Starts writing `object`'s rows in a transaction of its own: loaded from its file, or, where
    /// `replaying` holds its rejected rows, tried again from them.
    fn begin(
        &mut self,
        object: &ObjectMeta,
        run_id: i64,
        replaying: Option<Vec<StoredReject>>,
    ) -> Result<SqliteObject<'_>, SinkError> {
        let error = |e: rusqlite::Error| SinkError::table(self.spec.name.clone(), e.to_string());
        let transaction =
            self.connection.transaction_with_behavior(TransactionBehavior::Immediate).map_err(error)?;
        // Immediate: the transaction holds the database's write lock from here to its commit, so no run
        // can take the fence over in between, and the fence is checked now rather than at the commit.
        if let Some(token) = self.fence {
            let newest = newest_fence(&transaction, &self.dataflow).map_err(error)?;
            if newest != Some(token) {
                return Err(SinkError::table(self.spec.name.clone(), super::fenced_out(token, newest)));
            }
        }
        Ok(SqliteObject::new(
            transaction,
            &self.dataflow,
            &self.spec,
            &mut self.columns,
            object.clone(),
            run_id,
            replaying,
        ))
    }
}

/// The newest fencing token recorded for `dataflow`'s table.
fn newest_fence(connection: &Connection, dataflow: &str) -> rusqlite::Result<Option<i64>> {
    // Cached: checked at every object, it is prepared once per connection.
    connection
        .prepare_cached("SELECT token FROM _sluice_fences WHERE dataflow = ?1")?
        .query_row([dataflow], |row| row.get(0))
        .optional()
}

/// The undo log of `table`: rows runs replaced or merged over, with the run that did and their rowids.
fn undo_table(table: &str) -> String {
    format!("_sluice_undo_{table}")
}

/// Gives `column` of `table` the declared type `kind`, keeping every row under its rowid and the table's
/// indexes. SQLite cannot alter a column's type, so the table is rebuilt (its documented procedure); values
/// take the new type's affinity on the way, so integers become their text in a TEXT column and go back to
/// integers in an INTEGER one.
fn retype_column(
    transaction: &Transaction<'_>,
    table: &str,
    column: &str,
    kind: &str,
) -> rusqlite::Result<()> {
    let definitions: Vec<(String, String, bool)> = transaction
        .prepare("SELECT name, type, \"notnull\" FROM pragma_table_info(?1)")?
        .query_map([table], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let indexes: Vec<String> = transaction
        .prepare("SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ?1 AND sql IS NOT NULL")?
        .query_map([table], |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let columns: Vec<String> = definitions
        .iter()
        .map(|(name, declared, not_null)| {
            let declared = if name.eq_ignore_ascii_case(column) { kind } else { declared.as_str() };
            format!("{} {declared}{}", quote(name), if *not_null { " NOT NULL" } else { "" })
        })
        .collect();
    let names: Vec<String> = definitions.iter().map(|(name, _, _)| quote(name)).collect();
    let names = names.join(", ");
    let rebuilt = format!("_sluice_retype_{table}");
    transaction.execute_batch(&format!(
        "CREATE TABLE {new} ({columns});
         INSERT INTO {new} (rowid, {names}) SELECT rowid, {names} FROM {old};
         DROP TABLE {old};
         ALTER TABLE {new} RENAME TO {old};",
        new = quote(&rebuilt),
        old = quote(table),
        columns = columns.join(", ")
    ))?;
    for index in indexes {
        transaction.execute_batch(&index)?;
    }
    Ok(())
}

/// The declared type of each of a table's columns, by lower-cased name.
fn declared_types(
    transaction: &Transaction<'_>,
    table: &str,
) -> rusqlite::Result<std::collections::HashMap<String, String>> {
    transaction
        .prepare("SELECT name, type FROM pragma_table_info(?1)")?
        .query_map([table], |row| {
            Ok((row.get::<_, String>(0)?.to_ascii_lowercase(), row.get::<_, String>(1)?))
        })?
        .collect()
}

/// The names of a table's columns, as declared, in order (none for a table that does not exist).
fn column_names(transaction: &Transaction<'_>, table: &str) -> rusqlite::Result<Vec<String>> {
    transaction
        .prepare("SELECT name FROM pragma_table_info(?1)")?
        .query_map([table], |row| row.get(0))?
        .collect()
}

fn has_table(transaction: &Transaction<'_>, table: &str) -> rusqlite::Result<bool> {
    transaction
        .query_row("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1", [table], |row| {
            row.get::<_, i64>(0)
        })
        .map(|count| count > 0)
}

fn count_rows(transaction: &Transaction<'_>, table: &str) -> rusqlite::Result<u64> {
    transaction
        .query_row(&format!("SELECT count(*) FROM {}", quote(table)), [], |row| row.get::<_, i64>(0))
        .map(|n| n as u64)
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

/// The rows and columns of `table` in the database at `path`, read-only; `None` where it does not exist.
pub fn table_shape(path: &Path, table: &str) -> Option<(u64, usize)> {
    if !table_exists(path, table) {
        return None;
    }
    let connection = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).ok()?;
    let rows: i64 =
        connection.query_row(&format!("SELECT count(*) FROM {}", quote(table)), [], |row| row.get(0)).ok()?;
    let columns: i64 =
        connection.query_row("SELECT count(*) FROM pragma_table_info(?1)", [table], |row| row.get(0)).ok()?;
    Some((rows as u64, columns as usize))
}

/// The rejected rows `dataflow` keeps in the database at `path` (of run `run` only, where given),
/// read-only.
pub fn stored_rejects(path: &Path, dataflow: &str, run: Option<i64>) -> Result<Vec<StoredReject>, String> {
    if !table_exists(path, "_sluice_rejects") {
        return Ok(Vec::new());
    }
    let read = || -> rusqlite::Result<Vec<StoredReject>> {
        let connection = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        // Rows a replay took out of the rejects stay for a rollback of it, but are rejected no more.
        let (stage, pending) = match keeps_stages(&connection)? {
            true => ("stage", "replayed_by IS NULL"),
            false => ("''", "true"),
        };
        let mut statement = connection.prepare(&format!(
            "SELECT run_id, object, etag, line, reason, raw, {stage} FROM _sluice_rejects
             WHERE dataflow = ?1 AND (?2 IS NULL OR run_id = ?2) AND {pending}"
        ))?;
        statement
            .query_map(params![dataflow, run], |row| {
                Ok(StoredReject {
                    run_id: row.get(0)?,
                    object: row.get(1)?,
                    etag: row.get(2)?,
                    line: row.get::<_, i64>(3)? as u64,
                    reason: row.get(4)?,
                    raw: row.get(5)?,
                    stage: RejectStage::parse(&row.get::<_, String>(6)?),
                })
            })?
            .collect()
    };
    read().map_err(|e| format!("cannot read the rejected rows in `{}`: {e}", path.display()))
}

/// The columns `key` and `value` of `table` in the database at `path`, read-only; empty where the table
/// or either column is not there.
pub fn stored_pairs(
    path: &Path,
    table: &str,
    key: &str,
    value: &str,
) -> Result<Vec<(String, String)>, String> {
    if !table_exists(path, table) {
        return Ok(Vec::new());
    }
    let read = || -> rusqlite::Result<Vec<(String, String)>> {
        let connection = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        let present: i64 = connection.query_row(
            "SELECT count(*) FROM pragma_table_info(?1) WHERE name IN (?2, ?3)",
            params![table, key, value],
            |row| row.get(0),
        )?;
        if present < 2 {
            return Ok(Vec::new());
        }
        let sql = format!("SELECT {}, {} FROM {} ORDER BY rowid", quote(key), quote(value), quote(table));
        let mut statement = connection.prepare(&sql)?;
        statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?.collect()
    };
    read().map_err(|e| format!("cannot read `{table}` in `{}`: {e}", path.display()))
}

/// Adds the columns a replay of rejects needs to a `_sluice_rejects` made before they were there.
fn add_replay_columns(connection: &Connection) -> rusqlite::Result<()> {
    if keeps_stages(connection)? {
        return Ok(());
    }
    connection.execute_batch(
        "ALTER TABLE _sluice_rejects ADD COLUMN stage TEXT NOT NULL DEFAULT '';
         ALTER TABLE _sluice_rejects ADD COLUMN replayed_by INTEGER;",
    )
}

/// Whether `_sluice_rejects` has the columns of a replay (a database only read since an upgrade has not).
fn keeps_stages(connection: &Connection) -> rusqlite::Result<bool> {
    connection.query_row(
        "SELECT count(*) > 0 FROM pragma_table_info('_sluice_rejects') WHERE name = 'replayed_by'",
        [],
        |row| row.get(0),
    )
}

/// An SQL identifier, quoted.
fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
