//! One object's rows going into a PostgreSQL table, in one transaction that ends with its marker.

use super::copy::{push_escaped, push_field, unstorable};
use super::{
    IDENTITY, LINEAGE_COLUMNS, MAX_COLUMNS, ROW_BLOCK, SLUICE_COLUMNS, TableColumn, UNDO_EXTRA_COLUMNS,
    all_columns, read_columns,
};
use crate::batch::{RecordBatch, Value};
use crate::batch::{RejectStage, RejectedRow};
use crate::config::{TypeConflict, WriteMode};
use crate::object::ObjectMeta;
use crate::pg::{self, quote};
use crate::sink::column::ColumnType;
use crate::sink::{
    CommittedObject, ObjectWrite, SinkError, StoredReject, TableSpec, log_widened, rejected_row,
    too_many_columns, type_conflict,
};
use crate::time::millis;
use std::collections::VecDeque;
use std::io::Write;
use std::ops::Range;
use std::time::SystemTime;

/// Where an object's rows go.
pub(super) struct Target<'s> {
    /// The dataflow's schema, quoted.
    pub schema: &'s str,
    /// The table and its undo log, schema-qualified and quoted.
    pub table: String,
    pub undo: String,
    pub spec: &'s TableSpec,
}

pub(super) struct PostgresObject<'s> {
    transaction: postgres::Transaction<'s>,
    target: Target<'s>,
    /// The sink's view of the table's columns, brought up to date when the object commits.
    committed_columns: &'s mut Option<Vec<TableColumn>>,
    columns: Option<Vec<TableColumn>>,
    created_table: bool,
    /// Columns this object added (`None`) or widened to text (from `Some` type).
    changed_columns: Vec<(String, Option<ColumnType>)>,
    /// The table's identity before this object's first row; `None` until it is read.
    row_start: Option<i64>,
    /// `_sluice_row` values reserved for this object and not used yet.
    row_numbers: RowNumbers,
    undo_ready: bool,
    earlier_rows_replaced: bool,
    object: ObjectMeta,
    run_id: i64,
    /// The run's fencing token, checked at the commit; `None` where the sink was not fenced.
    fence: Option<i64>,
    rows: u64,
    rejected: u64,
    /// The object's rejected rows this transaction tries again, where it is a replay: it then adds to
    /// what the object's load committed, rather than being the object's load.
    replaying: Option<Vec<StoredReject>>,
    /// The COPY text of the batch being written, kept to reuse its allocation.
    buffer: String,
}

impl<'s> PostgresObject<'s> {
    pub fn new(
        transaction: postgres::Transaction<'s>,
        target: Target<'s>,
        committed_columns: &'s mut Option<Vec<TableColumn>>,
        object: ObjectMeta,
        run_id: i64,
        fence: Option<i64>,
        replaying: Option<Vec<StoredReject>>,
    ) -> PostgresObject<'s> {
        let columns = committed_columns.clone();
        PostgresObject {
            transaction,
            target,
            committed_columns,
            columns,
            created_table: false,
            changed_columns: Vec::new(),
            row_start: None,
            row_numbers: RowNumbers::default(),
            undo_ready: false,
            // A replay adds to the table as the runs before it left it.
            earlier_rows_replaced: replaying.is_some(),
            object,
            run_id,
            fence,
            rows: 0,
            rejected: 0,
            replaying,
            buffer: String::new(),
        }
    }

    fn error(&self, message: impl ToString) -> SinkError {
        SinkError::table(self.target.spec.name.clone(), message.to_string())
    }

    fn pg_error(&self, error: postgres::Error) -> SinkError {
        self.error(pg::describe(&error))
    }

    fn batch_sql(&mut self, sql: &str) -> Result<(), SinkError> {
        self.transaction
            .batch_execute(sql)
            .map_err(|e| SinkError::table(self.target.spec.name.clone(), pg::describe(&e)))
    }

    /// Creates the table, or adds the batch's new columns to it, typed by each column's first value.
    fn fit_columns(&mut self, batch: &RecordBatch) -> Result<(), SinkError> {
        let mut seen = std::collections::HashSet::new();
        for column in batch.columns() {
            if !seen.insert(column.name()) {
                return Err(self.error(format!("the records have two columns named `{}`", column.name())));
            }
            if column.name() == IDENTITY || LINEAGE_COLUMNS.contains(&column.name()) {
                return Err(self.error(format!("column `{}` is reserved for Sluice", column.name())));
            }
        }
        let known = self.columns.as_ref().map_or(0, Vec::len);
        let new = batch
            .columns()
            .iter()
            .filter(|c| !self.columns.iter().flatten().any(|known| known.name == c.name()))
            .count();
        let total = SLUICE_COLUMNS + known + new;
        if total + UNDO_EXTRA_COLUMNS > MAX_COLUMNS {
            let reason =
                too_many_columns(total, SLUICE_COLUMNS, "PostgreSQL", MAX_COLUMNS, UNDO_EXTRA_COLUMNS);
            return Err(self.error(reason).permanent());
        }
        // A column of nulls so far is text: the one type any later value fits without a conflict.
        let declared = |index: usize| {
            let column = &batch.columns()[index];
            (0..batch.num_rows())
                .find_map(|row| column.value(row).ok().as_ref().and_then(ColumnType::of))
                .unwrap_or(ColumnType::Text)
        };
        let table = self.target.table.clone();
        match self.columns.take() {
            None => {
                let columns: Vec<TableColumn> = batch
                    .columns()
                    .iter()
                    .enumerate()
                    .map(|(index, c)| TableColumn { name: c.name().to_string(), kind: declared(index) })
                    .collect();
                let mut definitions = vec![
                    format!("{IDENTITY} BIGINT GENERATED BY DEFAULT AS IDENTITY (INCREMENT BY {ROW_BLOCK})"),
                    "_sluice_object TEXT NOT NULL".to_string(),
                    "_sluice_line BIGINT".to_string(),
                    "_sluice_run BIGINT NOT NULL".to_string(),
                ];
                definitions.extend(columns.iter().map(|c| format!("{} {}", quote(&c.name), c.kind.sql())));
                // No index on the identity: even a BRIN index costs every row of every load a seventh of
                // COPY's time, for the sake of a rollback, which reads the table once instead. Merge
                // finds rows by the key.
                let mut create = format!("CREATE TABLE {table} ({});", definitions.join(", "));
                if self.target.spec.mode == WriteMode::Merge {
                    let key: Vec<String> = self.target.spec.key.iter().map(|k| quote(k)).collect();
                    create.push_str(&format!("CREATE INDEX ON {table} ({});", key.join(", ")));
                }
                self.batch_sql(&create)?;
                self.created_table = true;
                self.row_start = Some(0);
                self.columns = Some(columns);
            }
            Some(mut columns) => {
                let mut added = Vec::new();
                for (index, column) in batch.columns().iter().enumerate() {
                    if !columns.iter().any(|c| c.name == column.name()) {
                        let new = TableColumn { name: column.name().to_string(), kind: declared(index) };
                        added.push(format!(
                            "ALTER TABLE {table} ADD COLUMN {} {}",
                            quote(&new.name),
                            new.kind.sql()
                        ));
                        self.changed_columns.push((new.name.clone(), None));
                        columns.push(new);
                    }
                }
                self.columns = Some(columns);
                if !added.is_empty() {
                    self.batch_sql(&added.join("; "))?;
                    if self.undo_ready || self.undo_exists()? {
                        self.undo_ready = false;
                        self.fit_undo()?;
                    }
                }
            }
        }
        Ok(())
    }

    fn undo_exists(&mut self) -> Result<bool, SinkError> {
        let undo = self.target.undo.clone();
        read_columns(&mut self.transaction, &undo).map(|c| c.is_some()).map_err(|e| self.error(e))
    }

    fn columns(&self) -> &[TableColumn] {
        self.columns.as_deref().unwrap_or_default()
    }

    /// Makes the undo log hold every column the table has, creating it the first time.
    fn fit_undo(&mut self) -> Result<(), SinkError> {
        if self.undo_ready {
            return Ok(());
        }
        let (table, undo) = (self.target.table.clone(), self.target.undo.clone());
        let present = read_columns(&mut self.transaction, &undo).map_err(|e| self.error(e))?;
        let sql = match present {
            None => format!(
                "CREATE TABLE {undo} AS SELECT *, 0::bigint AS _sluice_removed_by FROM {table} WITH NO DATA;
                 CREATE INDEX ON {undo} (_sluice_removed_by);"
            ),
            Some(present) => self
                .columns()
                .iter()
                .filter(|c| !present.iter().any(|p| p.name == c.name))
                .map(|c| format!("ALTER TABLE {undo} ADD COLUMN {} {};", quote(&c.name), c.kind.sql()))
                .collect(),
        };
        if !sql.is_empty() {
            self.batch_sql(&sql)?;
        }
        self.undo_ready = true;
        Ok(())
    }

    /// Changes `column` to text, in the table and its undo log, keeping each value's text form.
    fn widen(&mut self, column: &str) -> Result<(), SinkError> {
        let Some(index) = self.columns().iter().position(|c| c.name == column) else { return Ok(()) };
        let previous = self.columns()[index].kind;
        let mut sql = format!(
            "ALTER TABLE {} ALTER COLUMN {c} TYPE TEXT USING {c}::text;",
            self.target.table,
            c = quote(column)
        );
        if self.undo_ready || self.undo_exists()? {
            sql.push_str(&format!(
                "ALTER TABLE {} ALTER COLUMN {c} TYPE TEXT USING {c}::text;",
                self.target.undo,
                c = quote(column)
            ));
        }
        self.batch_sql(&sql)?;
        if let Some(columns) = self.columns.as_mut() {
            columns[index].kind = ColumnType::Text;
        }
        // A column this object created, or a table it created, goes whole on a rollback.
        let added_now = self.changed_columns.iter().any(|(name, _)| name == column);
        if !self.created_table && !added_now {
            self.changed_columns.push((column.to_string(), Some(previous)));
        }
        Ok(())
    }

    /// `INSERT INTO undo (...) SELECT ..., run FROM table WHERE {condition}`: rows this run displaces, kept
    /// for a rollback.
    fn move_to_undo(&mut self, condition: &str) -> Result<(), SinkError> {
        self.fit_undo()?;
        let list = all_columns(self.columns());
        let sql = format!(
            "INSERT INTO {} ({list}, _sluice_removed_by) SELECT {list}, {run} FROM {} WHERE {condition}",
            self.target.undo,
            self.target.table,
            run = self.run_id
        );
        self.batch_sql(&sql)
    }

    /// Replace: the first object of a run to write moves every earlier row to the undo log.
    fn replace_earlier_rows(&mut self) -> Result<(), SinkError> {
        if self.earlier_rows_replaced || self.created_table {
            return Ok(());
        }
        self.earlier_rows_replaced = true;
        let earlier = format!("_sluice_run <> {}", self.run_id);
        self.move_to_undo(&earlier)?;
        let delete = format!("DELETE FROM {} WHERE {earlier}", self.target.table);
        self.batch_sql(&delete)
    }

    /// The end of the last block of identities handed out so far, below every row inserted from here on.
    fn read_row_start(&mut self) -> Result<(), SinkError> {
        if self.row_start.is_some() {
            return Ok(());
        }
        let start: i64 = self
            .transaction
            .query_one(
                &format!(
                    "SELECT coalesce(pg_sequence_last_value(pg_get_serial_sequence($1, '{IDENTITY}')::regclass) + {}, 0)",
                    ROW_BLOCK - 1
                ),
                &[&self.target.table],
            )
            .map_err(|e| SinkError::table(self.target.spec.name.clone(), pg::describe(&e)))?
            .get(0);
        self.row_start = Some(start);
        Ok(())
    }

    /// Makes sure `rows` identities are reserved, taking blocks of the table's identity sequence.
    fn reserve_rows(&mut self, rows: usize) -> Result<(), SinkError> {
        let missing = (rows as i64).saturating_sub(self.row_numbers.available());
        if missing <= 0 {
            return Ok(());
        }
        let blocks = (missing + ROW_BLOCK - 1) / ROW_BLOCK;
        let starts = self
            .transaction
            .query(
                &format!(
                    "SELECT nextval(pg_get_serial_sequence($1, '{IDENTITY}')) FROM generate_series(1, $2::bigint)"
                ),
                &[&self.target.table, &blocks],
            )
            .map_err(|e| self.pg_error(e))?;
        for start in starts {
            let start: i64 = start.get(0);
            self.row_numbers.blocks.push_back(start..start + ROW_BLOCK);
        }
        Ok(())
    }

    /// Checks every value against its column: a value PostgreSQL cannot hold, or a merge row without its
    /// key, rejects the row; a value the column's type cannot hold widens the column or fails the object.
    /// Returns which rows are rejected.
    fn check_values(&mut self, batch: &RecordBatch) -> Result<Vec<bool>, SinkError> {
        let mut rejected = vec![false; batch.num_rows()];
        let mut rejects = Vec::new();
        let mut reject = |row: usize, reason: String| {
            if !rejected[row] {
                rejected[row] = true;
                rejects.push(rejected_row(batch, row, reason));
            }
        };
        for column in batch.columns() {
            let name = column.name();
            let Some(mut kind) = self.columns().iter().find(|c| c.name == name).map(|c| c.kind) else {
                continue;
            };
            let is_key =
                self.target.spec.mode == WriteMode::Merge && self.target.spec.key.iter().any(|k| k == name);
            for row in 0..batch.num_rows() {
                let value = column.value(row).map_err(|e| self.error(e))?;
                if let Some(reason) = unstorable(&value) {
                    reject(row, format!("column `{name}`: {reason}"));
                } else if is_key && value == Value::Null {
                    reject(row, format!("the merge key column `{name}` is empty"));
                } else if !kind.fits(&value) {
                    match self.target.spec.on_type_conflict {
                        TypeConflict::Fail => {
                            return Err(self.error(type_conflict(batch.line(row), name, kind.sql(), &value)));
                        }
                        TypeConflict::Text => {
                            log_widened(&self.target.spec.name, batch.line(row), name, kind.sql(), &value);
                            self.widen(name)?;
                            kind = ColumnType::Text;
                        }
                    }
                }
            }
        }
        if !rejects.is_empty() {
            self.reject(&rejects)?;
        }
        Ok(rejected)
    }

    /// The batch's rows, but the rejected ones, as COPY text: identity, lineage, the batch's columns.
    /// Without `rejected` it also checks every value as [`Self::check_values`] would, and gives up
    /// (`false`) at the first that needs more than copying: most batches need nothing more, and get by
    /// with one pass over their values instead of two. Identities are used up only by an encoding that
    /// completes.
    fn encode(&mut self, batch: &RecordBatch, rejected: Option<&[bool]>) -> Result<bool, SinkError> {
        let checks: Option<Vec<(ColumnType, bool)>> = rejected.is_none().then(|| {
            let spec = self.target.spec;
            batch
                .columns()
                .iter()
                .map(|column| {
                    let kind = self
                        .columns()
                        .iter()
                        .find(|c| c.name == column.name())
                        .map_or(ColumnType::Text, |c| c.kind);
                    let is_key = spec.mode == WriteMode::Merge && spec.key.iter().any(|k| k == column.name());
                    (kind, is_key)
                })
                .collect()
        });
        let mut buffer = std::mem::take(&mut self.buffer);
        buffer.clear();
        let mut object = String::new();
        push_escaped(&mut object, &self.object.key);
        let mut numbers = itoa::Buffer::new();
        let run = self.run_id.to_string();
        let mut row_numbers = self.row_numbers.clone();
        let mut clean = true;
        'rows: for row in (0..batch.num_rows()).filter(|&row| rejected.is_none_or(|r| !r[row])) {
            buffer.push_str(numbers.format(row_numbers.take()));
            buffer.push('\t');
            buffer.push_str(&object);
            buffer.push('\t');
            buffer.push_str(numbers.format(batch.line(row)));
            buffer.push('\t');
            buffer.push_str(&run);
            for (index, column) in batch.columns().iter().enumerate() {
                let value = column.value(row).map_err(|e| self.error(e))?;
                if let Some(checks) = &checks {
                    let (kind, is_key) = checks[index];
                    if unstorable(&value).is_some() || (is_key && value == Value::Null) || !kind.fits(&value)
                    {
                        clean = false;
                        break 'rows;
                    }
                }
                buffer.push('\t');
                push_field(&mut buffer, &value);
            }
            buffer.push('\n');
        }
        self.buffer = buffer;
        if clean {
            self.row_numbers = row_numbers;
        }
        Ok(clean)
    }

    /// Sends the encoded rows to `table` (`columns` in COPY's order).
    fn copy(&mut self, table: &str, columns: &str) -> Result<(), SinkError> {
        let name = self.target.spec.name.clone();
        let failed = |message: String| SinkError::table(name.clone(), message);
        let mut writer = self
            .transaction
            .copy_in(&format!("COPY {table} ({columns}) FROM STDIN"))
            .map_err(|e| failed(pg::describe(&e)))?;
        writer.write_all(self.buffer.as_bytes()).map_err(|e| failed(e.to_string()))?;
        writer.finish().map(drop).map_err(|e| failed(pg::describe(&e)))
    }

    /// Merge: the batch goes to a staging table first; rows of the table with a key the batch holds are
    /// displaced (into the undo log when an earlier run wrote them), then the batch's last row per key goes
    /// in. The batch's identities increase with its rows, so the greatest is the last row.
    fn merge(&mut self, batch: &RecordBatch, batch_columns: &str) -> Result<(), SinkError> {
        let table = self.target.table.clone();
        let key: Vec<String> = self.target.spec.key.iter().map(|k| quote(k)).collect();
        for k in &self.target.spec.key {
            if !batch.columns().iter().any(|c| c.name() == k) {
                return Err(self
                    .error(format!("the merge key column `{k}` is not among the columns of these records")));
            }
        }
        let key = key.join(", ");
        self.batch_sql(&format!(
            "DROP TABLE IF EXISTS pg_temp._sluice_stage;
             CREATE TEMP TABLE _sluice_stage ON COMMIT DROP AS
             SELECT {batch_columns} FROM {table} WITH NO DATA"
        ))?;
        self.copy("pg_temp._sluice_stage", batch_columns)?;
        let staged_keys = format!("({key}) IN (SELECT {key} FROM pg_temp._sluice_stage)");
        self.move_to_undo(&format!("_sluice_run <> {} AND {staged_keys}", self.run_id))?;
        self.batch_sql(&format!(
            "DELETE FROM {table} WHERE {staged_keys};
             INSERT INTO {table} ({batch_columns})
             SELECT {batch_columns} FROM (
                 SELECT DISTINCT ON ({key}) * FROM pg_temp._sluice_stage ORDER BY {key}, {IDENTITY} DESC
             ) latest ORDER BY {IDENTITY}"
        ))
    }
}

impl ObjectWrite for PostgresObject<'_> {
    fn write(&mut self, batch: &RecordBatch) -> Result<(), SinkError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.fit_columns(batch)?;
        self.read_row_start()?;
        self.reserve_rows(batch.num_rows())?;
        let rejected = if self.encode(batch, None)? {
            vec![false; batch.num_rows()]
        } else {
            let rejected = self.check_values(batch)?;
            self.encode(batch, Some(&rejected))?;
            rejected
        };
        if self.target.spec.mode == WriteMode::Replace {
            self.replace_earlier_rows()?;
        }
        let batch_columns = std::iter::once(&IDENTITY)
            .chain(&LINEAGE_COLUMNS)
            .map(|c| c.to_string())
            .chain(batch.columns().iter().map(|c| quote(c.name())))
            .collect::<Vec<_>>()
            .join(", ");
        if self.target.spec.mode == WriteMode::Merge {
            self.merge(batch, &batch_columns)?;
        } else {
            let table = self.target.table.clone();
            self.copy(&table, &batch_columns)?;
        }
        self.rows += rejected.iter().filter(|r| !**r).count() as u64;
        Ok(())
    }

    fn reject(&mut self, rejects: &[RejectedRow]) -> Result<(), SinkError> {
        let sql = format!(
            "INSERT INTO {}._sluice_rejects (object, etag, line, reason, raw, run_id, stage) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            self.target.schema
        );
        let statement = self.transaction.prepare(&sql).map_err(|e| self.pg_error(e))?;
        for reject in rejects {
            self.transaction
                .execute(
                    &statement,
                    &[
                        &self.object.key,
                        &self.object.etag,
                        &(reject.line as i64),
                        &reject.reason.replace('\0', ""),
                        &reject.raw.replace('\0', ""),
                        &self.run_id,
                        &reject.stage.as_str(),
                    ],
                )
                .map_err(|e| SinkError::table(self.target.spec.name.clone(), pg::describe(&e)))?;
        }
        self.rejected += rejects.len() as u64;
        Ok(())
    }

    fn commit(mut self: Box<Self>) -> Result<CommittedObject, SinkError> {
        let schema = self.target.schema;
        let now = millis(SystemTime::now());
        let object = self.object.clone();
        let row_start =
            if self.rows == 0 && !self.created_table { i64::MAX } else { self.row_start.unwrap_or(0) };
        let name = self.target.spec.name.clone();
        let error = |e: postgres::Error| SinkError::table(name.clone(), pg::describe(&e));
        // Share-locked to the commit: a run taking the fence over waits for this object, then fences out
        // every later one.
        if let Some(token) = self.fence {
            let newest = newest_fence(&mut self.transaction, schema).map_err(error)?;
            if newest != Some(token) {
                return Err(SinkError::table(name.clone(), crate::sink::fenced_out(token, newest)));
            }
        }
        match &self.replaying {
            // The object's marker stays its load's; the rows tried again leave the rejects.
            Some(retried) => {
                let replayed = self
                    .transaction
                    .prepare(&format!(
                        "UPDATE {schema}._sluice_rejects SET replayed_by = $1 WHERE object = $2 AND etag = $3
                         AND run_id = $4 AND line = $5 AND stage = $6 AND replayed_by IS NULL"
                    ))
                    .map_err(error)?;
                for reject in retried {
                    let stage = reject.stage.map_or("", RejectStage::as_str);
                    self.transaction
                        .execute(
                            &replayed,
                            &[
                                &self.run_id,
                                &reject.object,
                                &reject.etag,
                                &reject.run_id,
                                &(reject.line as i64),
                                &stage,
                            ],
                        )
                        .map_err(error)?;
                }
            }
            None => {
                self.transaction
            .execute(
                &format!(
                    "INSERT INTO {schema}._sluice_objects (key, etag, size, last_modified, rows, rejected, run_id, committed_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
                ),
                &[
                    &object.key,
                    &object.etag,
                    &(object.size as i64),
                    &millis(object.last_modified),
                    &(self.rows as i64),
                    &(self.rejected as i64),
                    &self.run_id,
                    &now,
                ],
            )
            .map_err(error)?;
            }
        }
        // The run's version of the table: what it created, for a rollback to take away.
        self.transaction
            .execute(
                &format!(
                    "INSERT INTO {schema}._sluice_versions AS v (run_id, created_table, row_start, committed_at)
                     VALUES ($1, $2, $3, $4) ON CONFLICT (run_id) DO UPDATE SET
                     created_table = v.created_table OR excluded.created_table,
                     row_start = least(v.row_start, excluded.row_start)"
                ),
                &[&self.run_id, &self.created_table, &row_start, &now],
            )
            .map_err(error)?;
        for (column, previous) in &self.changed_columns {
            self.transaction
                .execute(
                    &format!("INSERT INTO {schema}._sluice_version_columns (run_id, name, previous_type) VALUES ($1, $2, $3)"),
                    &[&self.run_id, column, &previous.map(ColumnType::sql)],
                )
                .map_err(error)?;
        }
        let committed = CommittedObject::of(&object, self.rows, self.rejected, self.run_id);
        let this = *self;
        this.transaction.commit().map_err(error)?;
        *this.committed_columns = this.columns;
        Ok(committed)
    }
}

/// Identities reserved for one object: blocks of `ROW_BLOCK` taken from the table's identity sequence,
/// used in order. Blocks belong to the object, not to a session as a sequence's cache would: a pooled
/// connection's leftover cache would hand a later run numbers below its row start.
#[derive(Clone, Default)]
struct RowNumbers {
    blocks: VecDeque<Range<i64>>,
}

impl RowNumbers {
    fn available(&self) -> i64 {
        self.blocks.iter().map(|block| block.end - block.start).sum()
    }

    /// The next identity; only called with one reserved.
    fn take(&mut self) -> i64 {
        let block = self.blocks.front_mut().expect("identities are reserved before a batch is encoded");
        let number = block.start;
        block.start += 1;
        if block.is_empty() {
            self.blocks.pop_front();
        }
        number
    }
}

/// The newest fencing token recorded in the bookkeeping `schema` (quoted), share-locked where it is.
pub(super) fn newest_fence(
    client: &mut impl postgres::GenericClient,
    schema: &str,
) -> Result<Option<i64>, postgres::Error> {
    let row = client.query_opt(&format!("SELECT token FROM {schema}._sluice_fence FOR SHARE"), &[])?;
    Ok(row.map(|row| row.get(0)))
}
