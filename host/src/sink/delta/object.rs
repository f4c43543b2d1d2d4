//! One object's rows on their way into a Delta table: checked against the table's columns, converted to
//! Arrow, and streamed into the files the group's objects share, encoded on a thread of their own (so that
//! parsing and Parquet encoding overlap, and small objects do not make small files). An object dropped before its commit leaves its
//! key among the group's discarded ones, and the group's commit takes its rows out of the files again.

use super::DeltaTables;
use super::convert::{self, TableColumn};
use super::encoder::{Encoder, EncoderSpec};
use super::files::{self, Reject};
use super::location::TableAt;
use crate::batch::RejectedRow;
use crate::batch::{RecordBatch, Value};
use crate::config::{TypeConflict, WriteMode};
use crate::object::ObjectMeta;
use crate::sink::column::ColumnType;
use crate::sink::{CommittedObject, ObjectWrite, SinkError, log_widened, rejected_row, type_conflict};
use deltalake::arrow::array::RecordBatch as ArrowBatch;
use deltalake::kernel::Add;
use deltalake::parquet::file::properties::WriterProperties;
use std::time::Instant;

/// Objects committed as far as the runner knows, waiting for their Delta commit.
pub(super) struct Group {
    pub run_id: i64,
    pub started: Instant,
    /// The table's columns with what the group's objects added or widened.
    pub columns: Vec<TableColumn>,
    /// Columns the group widened to text: files written before hold them as they were, and are rewritten.
    pub widened: Vec<String>,
    pub objects: Vec<CommittedObject>,
    /// Parquet files written and not committed yet.
    pub files: Vec<Add>,
    pub rejects: Vec<Reject>,
    /// `merge`: the group's rows, held until the commit dedupes them on the key.
    pub merge_rows: Vec<ArrowBatch>,
    /// Objects that wrote rows into the group's files and were then given up: the commit takes their rows
    /// out again.
    pub discarded: Vec<String>,
    /// The encoder of the files the group's objects share.
    encoder: Option<Encoder>,
}

impl Group {
    pub fn new(run_id: i64, columns: Vec<TableColumn>) -> Group {
        Group {
            run_id,
            started: Instant::now(),
            columns,
            widened: Vec::new(),
            objects: Vec::new(),
            files: Vec::new(),
            rejects: Vec::new(),
            merge_rows: Vec::new(),
            discarded: Vec::new(),
            encoder: None,
        }
    }

    /// Closes the shared files once every row handed over is in them: before a column's type changes, and
    /// at the commit.
    pub fn seal(&mut self) -> Result<(), String> {
        if let Some(encoder) = self.encoder.take() {
            self.files.extend(encoder.finish()?);
        }
        Ok(())
    }
}

pub(super) struct DeltaObject<'s> {
    sink: &'s mut DeltaTables,
    at: TableAt,
    props: WriterProperties,
    object: ObjectMeta,
    run_id: i64,
    /// The group's columns with this object's additions and widenings.
    columns: Vec<TableColumn>,
    widened: Vec<String>,
    /// `merge`: the object's rows, for the group to dedupe at its commit.
    held: Vec<ArrowBatch>,
    /// Whether rows of the object went into the group's files.
    wrote: bool,
    committed: bool,
    rejects: Vec<Reject>,
    rows: u64,
    rejected: u64,
}

impl<'s> DeltaObject<'s> {
    pub fn new(
        sink: &'s mut DeltaTables,
        at: TableAt,
        props: WriterProperties,
        object: ObjectMeta,
        run_id: i64,
    ) -> DeltaObject<'s> {
        let columns = sink.group.as_ref().map(|g| g.columns.clone()).unwrap_or_default();
        DeltaObject {
            sink,
            at,
            props,
            object,
            run_id,
            columns,
            widened: Vec::new(),
            held: Vec::new(),
            wrote: false,
            committed: false,
            rejects: Vec::new(),
            rows: 0,
            rejected: 0,
        }
    }

    fn error(&self, message: impl ToString) -> SinkError {
        self.sink.error(message)
    }

    /// Adds the batch's new columns, typed by each one's first value (text where all are null).
    fn fit_columns(&mut self, batch: &RecordBatch) -> Result<(), SinkError> {
        let mut seen = std::collections::HashSet::new();
        for (index, column) in batch.columns().iter().enumerate() {
            if !seen.insert(column.name()) {
                return Err(self.error(format!("the records have two columns named `{}`", column.name())));
            }
            if convert::LINEAGE.iter().any(|(name, _)| *name == column.name()) {
                return Err(self.error(format!("column `{}` is reserved for Sluice", column.name())));
            }
            if !self.columns.iter().any(|c| c.name == column.name()) {
                let kind = (0..batch.num_rows())
                    .find_map(|row| batch.columns()[index].value(row).ok().as_ref().and_then(ColumnType::of))
                    .unwrap_or(ColumnType::Text);
                self.columns.push(TableColumn { name: column.name().to_string(), kind });
            }
        }
        Ok(())
    }

    /// Checks every value against its column: a merge row without its key is rejected; a value the
    /// column's type cannot hold widens the column to text or fails the object. Returns which rows are
    /// rejected.
    fn check_values(&mut self, batch: &RecordBatch) -> Result<Vec<bool>, SinkError> {
        let spec = &self.sink.spec;
        let mut rejected = vec![false; batch.num_rows()];
        for column in batch.columns() {
            let name = column.name();
            let position = self.columns.iter().position(|c| c.name == name).expect("fitted");
            let is_key = spec.mode == WriteMode::Merge && spec.key.iter().any(|k| k == name);
            if !is_key && self.columns[position].kind == ColumnType::Text {
                // Text holds any value: nothing to check (the conversion reads each value once).
                continue;
            }
            for (row, is_rejected) in rejected.iter_mut().enumerate() {
                let value = column.value(row).map_err(|e| self.sink.error(e))?;
                let kind = self.columns[position].kind;
                if is_key && value == Value::Null {
                    if !*is_rejected {
                        *is_rejected = true;
                        let reason = format!("the merge key column `{name}` is empty");
                        self.rejects.push(Reject::of(
                            &rejected_row(batch, row, reason),
                            &self.object,
                            self.run_id,
                        ));
                    }
                } else if !kind.fits(&value) {
                    let declared = convert_name(kind);
                    match spec.on_type_conflict {
                        TypeConflict::Fail => {
                            return Err(self.sink.error(type_conflict(
                                batch.line(row),
                                name,
                                declared,
                                &value,
                            )));
                        }
                        TypeConflict::Text => {
                            log_widened(&spec.name, batch.line(row), name, declared, &value);
                            self.columns[position].kind = ColumnType::Text;
                            self.widened.push(name.to_string());
                        }
                    }
                }
            }
        }
        Ok(rejected)
    }
}

/// A column type as error messages name it.
fn convert_name(kind: ColumnType) -> &'static str {
    match kind {
        ColumnType::Boolean => "BOOLEAN",
        ColumnType::Integer => "BIGINT",
        ColumnType::Float => "DOUBLE",
        ColumnType::Text => "STRING",
        ColumnType::Json => "STRING",
    }
}

impl ObjectWrite for DeltaObject<'_> {
    fn write(&mut self, batch: &RecordBatch) -> Result<(), SinkError> {
        self.write_owned(batch.clone())
    }

    fn write_owned(&mut self, batch: RecordBatch) -> Result<(), SinkError> {
        self.fit_columns(&batch)?;
        let widened_before = self.widened.len();
        let rejected = self.check_values(&batch)?;
        let arrow = convert::to_arrow(batch, &rejected, &self.columns, &self.object.key, self.run_id)
            .map_err(|e| self.error(e))?;
        self.rows += arrow.num_rows() as u64;
        self.rejected += rejected.iter().filter(|&&r| r).count() as u64;
        if self.sink.spec.mode == WriteMode::Merge {
            if self.widened.len() > widened_before {
                let schema = convert::arrow_schema(&self.columns);
                for held in &mut self.held {
                    *held = files::cast_batch(held, &schema).map_err(|e| self.sink.error(e))?;
                }
            }
            self.held.push(arrow);
            return Ok(());
        }
        let file_size = self.sink.spec.delta.file_size;
        let (at, props, columns) = (&self.at, &self.props, &self.columns);
        let sink = &mut *self.sink;
        let partition_by = &sink.spec.delta.partition_by;
        if let Some(missing) = partition_by.iter().find(|p| !columns.iter().any(|c| &c.name == *p)) {
            return Err(SinkError::table(
                sink.spec.name.clone(),
                format!("the table is partitioned by `{missing}`, which the records do not have"),
            ));
        }
        let group = sink.group.as_mut().expect("an object begins in a group");
        let widened = self.widened.len() > widened_before;
        // A partitioned writer's schema is fixed, so new columns start files of their own.
        let regrown =
            !partition_by.is_empty() && group.encoder.as_ref().is_some_and(|e| e.columns() != columns);
        self.wrote = true;
        let error = |message: String| SinkError::table(sink.spec.name.clone(), message);
        if widened || regrown {
            // Files of the old type or columns close here; the commit rewrites those of the old type.
            group.seal().map_err(error)?;
        }
        if group.encoder.is_none() {
            let options = sink.runtime.block_on(at.options()).map_err(error)?;
            let spec = EncoderSpec {
                at: at.clone(),
                options,
                columns: columns.clone(),
                partition_by: partition_by.clone(),
                props: props.clone(),
                file_size,
            };
            group.encoder = Some(Encoder::start(spec).map_err(error)?);
        }
        group.encoder.as_mut().expect("started above").write(arrow).map_err(error)
    }

    fn reject(&mut self, rejects: &[RejectedRow]) -> Result<(), SinkError> {
        self.rejected += rejects.len() as u64;
        self.rejects.extend(rejects.iter().map(|r| Reject::of(r, &self.object, self.run_id)));
        Ok(())
    }

    fn commit(mut self: Box<Self>) -> Result<CommittedObject, SinkError> {
        self.committed = true;
        let committed = CommittedObject::of(&self.object, self.rows, self.rejected, self.run_id);
        let (columns, widened) = (self.columns.clone(), std::mem::take(&mut self.widened));
        let (held, rejects) = (std::mem::take(&mut self.held), std::mem::take(&mut self.rejects));
        let sink = &mut *self.sink;
        let group = sink.group.as_mut().expect("an object begins in a group");
        group.columns = columns;
        for name in widened {
            if !group.widened.contains(&name) {
                group.widened.push(name);
            }
        }
        group.merge_rows.extend(held);
        group.rejects.extend(rejects);
        group.objects.push(committed.clone());
        if group.objects.len() >= sink.spec.delta.commit_objects {
            sink.commit_group()?;
        }
        Ok(committed)
    }
}

impl Drop for DeltaObject<'_> {
    fn drop(&mut self) {
        if !self.committed
            && self.wrote
            && let Some(group) = self.sink.group.as_mut()
        {
            group.discarded.push(self.object.key.clone());
        }
    }
}
