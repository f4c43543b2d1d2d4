//! One object's rows written inside its transaction, by the table's write mode.

use super::{
    LINEAGE_COLUMNS, MAX_COLUMNS, UNDO_EXTRA_COLUMNS, column_names, declared_types, has_table, quote,
    retype_column, undo_table,
};
use crate::batch::{RecordBatch, Value};
use crate::batch::{RejectStage, RejectedRow};
use crate::config::{TypeConflict, WriteMode};
use crate::object::ObjectMeta;
use crate::sink::{
    CommittedObject, ObjectWrite, SinkError, StoredReject, TableSpec, log_widened, rejected_row,
    too_many_columns, type_conflict,
};
use crate::time::millis;
use rusqlite::types::Null;
use rusqlite::{OptionalExtension, Transaction, params};
use std::time::SystemTime;

/// One object's rows, inside its transaction.
pub(super) struct SqliteObject<'s> {
    transaction: Transaction<'s>,
    dataflow: &'s str,
    spec: &'s TableSpec,
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
    /// Columns this object widened to text, with their declared type before.
    widened_columns: Vec<(String, String)>,
    /// Below the smallest rowid this object inserted (a merge can free and reuse rowids, so the first
    /// insert is not always the smallest).
    rowid_start: i64,
    object: ObjectMeta,
    run_id: i64,
    rows: u64,
    rejected: u64,
    /// The object's rejected rows this transaction tries again, where it is a replay: it then adds to
    /// what the object's load committed, rather than being the object's load.
    replaying: Option<Vec<StoredReject>>,
}

impl<'s> SqliteObject<'s> {
    pub(super) fn new(
        transaction: Transaction<'s>,
        dataflow: &'s str,
        spec: &'s TableSpec,
        committed_columns: &'s mut Vec<String>,
        object: ObjectMeta,
        run_id: i64,
        replaying: Option<Vec<StoredReject>>,
    ) -> SqliteObject<'s> {
        SqliteObject {
            transaction,
            dataflow,
            spec,
            table: &spec.name,
            columns: committed_columns.clone(),
            committed_columns,
            created_table: false,
            added_columns: Vec::new(),
            widened_columns: Vec::new(),
            // An object that inserts no rows leaves the run's rowid start as the other objects set it.
            rowid_start: i64::MAX,
            object,
            run_id,
            rows: 0,
            rejected: 0,
            replaying,
        }
    }

    fn error(&self, message: impl ToString) -> SinkError {
        SinkError::table(self.table.to_string(), message.to_string())
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
                Some(Ok(Value::Text(_) | Value::Json(_) | Value::Timestamp(_))) => "TEXT",
                // All null so far: no declared type, so a later value of any kind is kept as it is.
                _ => "",
            }
        };
        let new =
            batch.columns().iter().filter(|c| !self.columns.contains(&c.name().to_ascii_lowercase())).count();
        let total = LINEAGE_COLUMNS.len().max(self.columns.len()) + new;
        if total + UNDO_EXTRA_COLUMNS > MAX_COLUMNS {
            return Err(self
                .error(too_many_columns(
                    total,
                    LINEAGE_COLUMNS.len(),
                    "SQLite",
                    MAX_COLUMNS,
                    UNDO_EXTRA_COLUMNS,
                ))
                .permanent());
        }
        if self.columns.is_empty() {
            let mut definitions = vec![
                "_sluice_object TEXT NOT NULL".into(),
                "_sluice_line INTEGER".into(),
                "_sluice_run INTEGER NOT NULL".into(),
            ];
            for (index, column) in batch.columns().iter().enumerate() {
                definitions.push(format!("{} {}", quote(column.name()), declared(index)));
            }
            // Merge finds rows by the key; rollback finds a run's rows by rowid, needing no index.
            let mut create = format!("CREATE TABLE {} ({});", quote(self.table), definitions.join(", "));
            if self.spec.mode == WriteMode::Merge {
                let key: Vec<String> = self.spec.key.iter().map(|k| quote(k)).collect();
                create.push_str(&format!(
                    "CREATE INDEX {} ON {} ({});",
                    quote(&format!("_sluice_key_of_{}", self.table)),
                    quote(self.table),
                    key.join(", ")
                ));
            }
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

    /// Checks every value against its column's declared type: a merge row without its key is rejected; a
    /// value the type would change (SQLite's affinity turns the text `007` into the integer 7) widens the
    /// column to text or fails the object. Returns which rows are rejected.
    fn check_values(&mut self, batch: &RecordBatch) -> Result<Vec<bool>, SinkError> {
        let types = declared_types(&self.transaction, self.table).map_err(|e| self.error(e))?;
        let mut rejected = vec![false; batch.num_rows()];
        let mut rejects = Vec::new();
        for column in batch.columns() {
            let name = column.name();
            let mut declared = types.get(&name.to_ascii_lowercase()).cloned().unwrap_or_default();
            let is_key = self.spec.mode == WriteMode::Merge
                && self.spec.key.iter().any(|k| k.eq_ignore_ascii_case(name));
            for (row, row_rejected) in rejected.iter_mut().enumerate() {
                let value = column.value(row).map_err(|e| self.error(e))?;
                if is_key && value == Value::Null {
                    if !*row_rejected {
                        *row_rejected = true;
                        rejects.push(rejected_row(
                            batch,
                            row,
                            format!("the merge key column `{name}` is empty"),
                        ));
                    }
                } else if !fits(&declared, &value) {
                    if self.spec.on_type_conflict == TypeConflict::Fail {
                        return Err(self.error(type_conflict(batch.line(row), name, &declared, &value)));
                    }
                    log_widened(self.table, batch.line(row), name, &declared, &value);
                    retype_column(&self.transaction, self.table, name, "TEXT").map_err(|e| self.error(e))?;
                    let added_now = self.added_columns.iter().any(|c| c.eq_ignore_ascii_case(name));
                    if !self.created_table && !added_now {
                        self.widened_columns.push((name.to_string(), declared));
                    }
                    declared = "TEXT".to_string();
                }
            }
        }
        if !rejects.is_empty() {
            self.reject(&rejects)?;
        }
        Ok(rejected)
    }

    /// Makes the undo log hold every column the table has, creating it the first time.
    fn fit_undo(&mut self) -> rusqlite::Result<()> {
        let undo = undo_table(self.table);
        if !has_table(&self.transaction, &undo)? {
            self.transaction.execute_batch(&format!(
                "CREATE TABLE {undo_q} AS SELECT *, 0 AS _sluice_removed_by, 0 AS _sluice_rowid FROM {table} WHERE 0;
                 CREATE INDEX {index} ON {undo_q} (_sluice_removed_by);",
                undo_q = quote(&undo),
                table = quote(self.table),
                index = quote(&format!("{undo}_by_run"))
            ))?;
            return Ok(());
        }
        let present = column_names(&self.transaction, &undo)?;
        for column in column_names(&self.transaction, self.table)? {
            if !present.iter().any(|p| p.eq_ignore_ascii_case(&column)) {
                self.transaction.execute_batch(&format!(
                    "ALTER TABLE {} ADD COLUMN {}",
                    quote(&undo),
                    quote(&column)
                ))?;
            }
        }
        Ok(())
    }

    /// `INSERT INTO undo (...) SELECT ..., run, rowid FROM table WHERE {condition}`: rows this run
    /// displaces, kept for a rollback.
    fn move_to_undo_sql(&self, condition: &str) -> rusqlite::Result<String> {
        let columns: Vec<String> =
            column_names(&self.transaction, self.table)?.iter().map(|c| quote(c)).collect();
        let columns = columns.join(", ");
        Ok(format!(
            "INSERT INTO {} ({columns}, _sluice_removed_by, _sluice_rowid) SELECT {columns}, {run}, rowid FROM {} WHERE {condition}",
            quote(&undo_table(self.table)),
            quote(self.table),
            run = self.run_id
        ))
    }

    /// Replace: the first object of a run moves every earlier row to the undo log.
    fn replace_earlier_rows(&mut self) -> rusqlite::Result<()> {
        let replaced_already: Option<i64> = self
            .transaction
            .query_row(
                "SELECT run_id FROM _sluice_versions WHERE dataflow = ?1 AND run_id = ?2",
                params![self.dataflow, self.run_id],
                |row| row.get(0),
            )
            .optional()?;
        if replaced_already.is_some() || self.created_table {
            return Ok(());
        }
        let earlier = format!("_sluice_run <> {}", self.run_id);
        self.transaction.execute(&self.move_to_undo_sql(&earlier)?, [])?;
        self.transaction.execute(&format!("DELETE FROM {} WHERE {earlier}", quote(self.table)), [])?;
        Ok(())
    }
}

impl ObjectWrite for SqliteObject<'_> {
    fn write(&mut self, batch: &RecordBatch) -> Result<(), SinkError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.fit_columns(batch)?;
        let rejected = self.check_values(batch)?;
        if self.spec.mode != WriteMode::Append {
            self.fit_undo().map_err(|e| self.error(e))?;
        }
        // A replay adds to the table as the runs before it left it.
        if self.spec.mode == WriteMode::Replace && self.rows == 0 && self.replaying.is_none() {
            self.replace_earlier_rows().map_err(|e| self.error(e))?;
        }
        // Merge: where a row's key is already in the table, the row there is displaced (into the undo log
        // when an earlier run wrote it) before the new one goes in; a later row with the same key wins.
        let merge = if self.spec.mode == WriteMode::Merge {
            let mut key_columns = Vec::with_capacity(self.spec.key.len());
            for key in &self.spec.key {
                let index = batch.columns().iter().position(|c| c.name().eq_ignore_ascii_case(key));
                key_columns.push(index.ok_or_else(|| {
                    self.error(format!(
                        "the merge key column `{key}` is not among the columns of these records"
                    ))
                })?);
            }
            let matches: Vec<String> = self
                .spec
                .key
                .iter()
                .enumerate()
                .map(|(i, k)| format!("{} IS ?{}", quote(k), i + 1))
                .collect();
            let matches = matches.join(" AND ");
            let displace = self
                .move_to_undo_sql(&format!("{matches} AND _sluice_run <> {}", self.run_id))
                .map_err(|e| self.error(e))?;
            let delete = format!("DELETE FROM {} WHERE {matches}", quote(self.table));
            Some((key_columns, displace, delete))
        } else {
            None
        };
        let names: Vec<String> = LINEAGE_COLUMNS
            .iter()
            .map(|c| c.to_string())
            .chain(batch.columns().iter().map(|c| quote(c.name())))
            .collect();
        let placeholders = vec!["?"; names.len()].join(", ");
        let insert =
            format!("INSERT INTO {} ({}) VALUES ({placeholders})", quote(self.table), names.join(", "));
        let mut statement = self.transaction.prepare_cached(&insert).map_err(|e| self.error(e))?;
        let fail = |e: rusqlite::Error| SinkError::table(self.table.to_string(), e.to_string());
        // Bindings stay set across executions, so the object and run are bound once per batch.
        statement.raw_bind_parameter(1, &self.object.key).map_err(fail)?;
        statement.raw_bind_parameter(3, self.run_id).map_err(fail)?;
        for row in (0..batch.num_rows()).filter(|&row| !rejected[row]) {
            if let Some((key_columns, displace, delete)) = &merge {
                let mut key = Vec::with_capacity(key_columns.len());
                for &column in key_columns {
                    key.push(sql_value(batch.columns()[column].value(row).map_err(|e| self.error(e))?));
                }
                let key = rusqlite::params_from_iter(key.iter());
                self.transaction
                    .prepare_cached(displace)
                    .and_then(|mut s| s.execute(key.clone()))
                    .map_err(fail)?;
                self.transaction.prepare_cached(delete).and_then(|mut s| s.execute(key)).map_err(fail)?;
            }
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
                    Value::Timestamp(t) => statement.raw_bind_parameter(parameter, t.to_string()),
                }
                .map_err(fail)?;
            }
            statement.raw_execute().map_err(fail)?;
            self.rowid_start = self.rowid_start.min(self.transaction.last_insert_rowid() - 1);
        }
        self.rows += rejected.iter().filter(|r| !**r).count() as u64;
        Ok(())
    }

    fn reject(&mut self, rejects: &[RejectedRow]) -> Result<(), SinkError> {
        let mut statement = self
            .transaction
            .prepare_cached(
                "INSERT INTO _sluice_rejects (dataflow, object, etag, line, reason, raw, run_id, stage)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
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
                    self.run_id,
                    reject.stage.as_str()
                ])
                .map_err(|e| SinkError::table(self.table.to_string(), e.to_string()))?;
        }
        self.rejected += rejects.len() as u64;
        Ok(())
    }

    fn commit(self: Box<Self>) -> Result<CommittedObject, SinkError> {
        let error = |e: rusqlite::Error| SinkError::table(self.table.to_string(), e.to_string());
        match &self.replaying {
            // The object's marker stays its load's; the rows tried again leave the rejects.
            Some(retried) => {
                let mut replayed = self
                    .transaction
                    .prepare_cached(
                        "UPDATE _sluice_rejects SET replayed_by = ?1 WHERE dataflow = ?2 AND object = ?3
                         AND etag = ?4 AND run_id = ?5 AND line = ?6 AND stage = ?7 AND replayed_by IS NULL",
                    )
                    .map_err(error)?;
                for reject in retried {
                    let stage = reject.stage.map_or("", RejectStage::as_str);
                    replayed
                        .execute(params![
                            self.run_id,
                            self.dataflow,
                            reject.object,
                            reject.etag,
                            reject.run_id,
                            reject.line as i64,
                            stage
                        ])
                        .map_err(error)?;
                }
            }
            None => {
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
            }
        }
        // The run's version of the table: what it created, for a rollback to take away.
        self.transaction
            .execute(
                "INSERT INTO _sluice_versions (dataflow, run_id, created_table, rowid_start, committed_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (dataflow, run_id) DO UPDATE SET
                 created_table = max(created_table, excluded.created_table),
                 rowid_start = min(rowid_start, excluded.rowid_start)",
                params![
                    self.dataflow,
                    self.run_id,
                    self.created_table,
                    self.rowid_start,
                    millis(SystemTime::now())
                ],
            )
            .map_err(error)?;
        for (column, previous) in &self.widened_columns {
            self.transaction
                .execute(
                    "INSERT INTO _sluice_version_types (dataflow, run_id, name, previous_type) VALUES (?1, ?2, ?3, ?4)",
                    params![self.dataflow, self.run_id, column, previous],
                )
                .map_err(error)?;
        }
        for column in &self.added_columns {
            self.transaction
                .execute(
                    "INSERT INTO _sluice_version_columns (dataflow, run_id, name) VALUES (?1, ?2, ?3)",
                    params![self.dataflow, self.run_id, column],
                )
                .map_err(error)?;
        }
        let committed = CommittedObject::of(&self.object, self.rows, self.rejected, self.run_id);
        let this = *self;
        let table = this.table.to_string();
        this.transaction.commit().map_err(|e| SinkError::table(table, e.to_string()))?;
        *this.committed_columns = this.columns;
        Ok(committed)
    }
}

/// Whether a column of the `declared` type keeps `value` as it is: integers go into REAL, anything into
/// TEXT (as its text form) or into a column of no type; nothing else is converted.
fn fits(declared: &str, value: &Value<'_>) -> bool {
    matches!(
        (declared.to_ascii_uppercase().as_str(), value),
        (_, Value::Null)
            | ("" | "TEXT", _)
            | ("INTEGER", Value::Integer(_) | Value::Boolean(_))
            | ("REAL", Value::Integer(_) | Value::Float(_))
    )
}

/// A record's value as SQLite holds it.
fn sql_value(value: Value<'_>) -> rusqlite::types::Value {
    use rusqlite::types::Value as Sql;
    match value {
        Value::Null => Sql::Null,
        Value::Boolean(b) => Sql::Integer(b as i64),
        Value::Integer(i) => Sql::Integer(i),
        Value::Float(f) => Sql::Real(f),
        Value::Text(s) | Value::Json(s) => Sql::Text(s.to_string()),
        Value::Timestamp(t) => Sql::Text(t.to_string()),
    }
}
