//! Building record batches in the contract's column-major layout, and cutting them at a bounded size.

use crate::bindings::sluice::plugin::types::{Batch, Column, Output, RejectedRow, ValueType};
use crate::columns::TypedColumn;
use crate::ranged_bindings::sluice::plugin::columns::{ColumnValues as WireValues, TaggedValues};
use crate::ranged_bindings::sluice::plugin::columns::{TypedBatch, TypedColumn as WireColumn, TypedOutput};
use std::collections::HashMap;

/// A batch is handed on once it holds this many rows...
const BATCH_ROWS: u32 = 16 * 1024;
/// ...or this many bytes of values, whichever comes first. Large enough that a call across the component
/// boundary is rare next to the work of parsing; small enough that a batch stays a few MiB.
const BATCH_BYTES: usize = 4 << 20;
/// A rejected row's raw text is cut to this many bytes.
const RAW_LIMIT: usize = 1024;

/// One value of a record.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value<'a> {
    Null,
    Boolean(bool),
    Integer(i64),
    Float(f64),
    Text(&'a str),
    /// A nested JSON value (object, array, or a number too large for the other types), as JSON text.
    Json(&'a str),
}

#[derive(Default)]
struct ColumnBuilder {
    name: String,
    types: Vec<u8>,
    ends: Vec<u32>,
    data: Vec<u8>,
}

impl ColumnBuilder {
    #[inline]
    fn push(&mut self, value: Value<'_>) {
        let tag = match value {
            Value::Null => ValueType::Null,
            Value::Boolean(b) => {
                self.data.push(b as u8);
                ValueType::Boolean
            }
            Value::Integer(i) => {
                self.data.extend_from_slice(&i.to_le_bytes());
                ValueType::Integer
            }
            Value::Float(f) => {
                self.data.extend_from_slice(&f.to_le_bytes());
                ValueType::Float
            }
            Value::Text(s) => {
                self.data.extend_from_slice(s.as_bytes());
                ValueType::Text
            }
            Value::Json(s) => {
                self.data.extend_from_slice(s.as_bytes());
                ValueType::Json
            }
        };
        self.types.push(tag as u8);
        self.ends.push(self.data.len() as u32);
    }

    /// Keeps the first `rows` values.
    fn truncate(&mut self, rows: usize) {
        self.types.truncate(rows);
        self.ends.truncate(rows);
        self.data.truncate(rows.checked_sub(1).map_or(0, |last| self.ends[last] as usize));
    }

    /// Hands the column's buffers over and starts empty ones of the same capacity.
    fn take(&mut self) -> Column {
        Column {
            name: self.name.clone(),
            types: take_keeping_capacity(&mut self.types),
            ends: take_keeping_capacity(&mut self.ends),
            data: take_keeping_capacity(&mut self.data),
        }
    }
}

/// One column of a whole batch, built value by value: for parsers whose input is itself column-major (a
/// Parquet row group), which hand a batch on whole with [`Emitter::emit_columns`] rather than row by row.
pub struct ColumnValues {
    builder: ColumnBuilder,
}

impl ColumnValues {
    /// An empty column `name`, with room for `rows` values.
    pub fn new(name: &str, rows: usize) -> Self {
        let builder = ColumnBuilder {
            name: name.to_string(),
            types: Vec::with_capacity(rows),
            ends: Vec::with_capacity(rows),
            data: Vec::new(),
        };
        ColumnValues { builder }
    }

    /// Appends the next row's value.
    #[inline]
    pub fn push(&mut self, value: Value<'_>) {
        self.builder.push(value);
    }

    /// How many values it holds.
    pub fn len(&self) -> usize {
        self.builder.types.len()
    }

    /// The column with only its first `rows` values: for a parser that finds a row bad part-way through.
    pub fn truncated(mut self, rows: usize) -> Self {
        self.builder.truncate(rows.min(self.len()));
        self
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.builder.types.is_empty()
    }

    /// The column's name.
    pub fn name(&self) -> &str {
        &self.builder.name
    }

    /// The column as the 1.0 layout hands it over.
    pub(crate) fn into_column(self) -> Column {
        let ColumnBuilder { name, types, ends, data } = self.builder;
        Column { name, types, ends, data }
    }
}

/// Moves a buffer out, leaving an empty one of the same capacity: the next batch is about as large, so it
/// need not grow again from nothing.
pub(crate) fn take_keeping_capacity<T>(buffer: &mut Vec<T>) -> Vec<T> {
    let capacity = buffer.capacity();
    std::mem::replace(buffer, Vec::with_capacity(capacity))
}

/// Builds one batch row by row: [`BatchBuilder::push`] values into columns, then end the row with
/// [`Emitter::end_row`]. Columns are found or added by name; a column added part-way through a batch holds
/// nulls for the rows before it, and a column a row leaves out holds null for that row.
#[derive(Default)]
pub struct BatchBuilder {
    columns: Vec<ColumnBuilder>,
    by_name: HashMap<String, usize>,
    /// The column after the one last looked up: records of one file mostly list their keys in the same
    /// order, so this is usually the next one asked for, found without hashing.
    next_guess: usize,
    rows: u32,
    lines: Vec<u64>,
    bytes: usize,
}

impl BatchBuilder {
    /// The index of the column `name`, added if the batch does not have it yet.
    pub fn column(&mut self, name: &str) -> usize {
        let guess = self.next_guess;
        if self.columns.get(guess).is_some_and(|column| column.name == name) {
            self.next_guess += 1;
            return guess;
        }
        if let Some(&index) = self.by_name.get(name) {
            self.next_guess = index + 1;
            return index;
        }
        let mut column = ColumnBuilder { name: name.to_string(), ..Default::default() };
        for _ in 0..self.rows {
            column.push(Value::Null);
        }
        self.columns.push(column);
        self.by_name.insert(name.to_string(), self.columns.len() - 1);
        self.next_guess = self.columns.len();
        self.columns.len() - 1
    }

    /// How many columns the batch has.
    pub fn column_count(&self) -> usize {
        self.columns.len()
    }

    /// Sets the current row's value in column `index`. Setting it twice keeps the later value (as a JSON
    /// object with a repeated key does).
    pub fn push(&mut self, index: usize, value: Value<'_>) {
        let rows = self.rows as usize;
        let column = &mut self.columns[index];
        if column.types.len() > rows {
            self.bytes -= column.data.len();
            column.truncate(rows);
            self.bytes += column.data.len();
        }
        let before = column.data.len();
        column.push(value);
        self.bytes += column.data.len() - before;
    }

    /// Drops the values pushed for the current row (a record found bad half-way).
    pub fn cancel_row(&mut self) {
        let rows = self.rows as usize;
        for column in &mut self.columns {
            self.bytes -= column.data.len();
            column.truncate(rows);
            self.bytes += column.data.len();
        }
    }

    pub(crate) fn end_row(&mut self, line: u64) {
        let rows = self.rows as usize;
        for column in &mut self.columns {
            if column.types.len() == rows {
                column.push(Value::Null);
            }
        }
        self.rows += 1;
        self.lines.push(line);
        self.next_guess = 0;
    }

    fn is_full(&self) -> bool {
        self.rows >= BATCH_ROWS || self.bytes >= BATCH_BYTES
    }

    pub(crate) fn take(&mut self) -> Option<Batch> {
        if self.rows == 0 {
            return None;
        }
        let batch = Batch {
            rows: self.rows,
            columns: self.columns.iter_mut().map(ColumnBuilder::take).collect(),
            lines: take_keeping_capacity(&mut self.lines),
        };
        self.rows = 0;
        self.bytes = 0;
        Some(batch)
    }
}

/// A rejected row's raw text as it is kept: its first 1 KiB, with invalid UTF-8 replaced.
pub(crate) fn raw_text(raw: &[u8]) -> String {
    String::from_utf8_lossy(&raw[..raw.len().min(RAW_LIMIT)]).into_owned()
}

/// A batch completed and not yet handed over, in the layout it was built in.
enum Completed {
    /// Built row by row, or from [`ColumnValues`]: the 1.0 layout.
    Tagged(Batch),
    /// Handed on with [`Emitter::emit_typed`]: records numbered from `first_line`.
    Typed { columns: Vec<TypedColumn>, rows: usize, first_line: u64 },
}

impl Completed {
    fn into_tagged(self) -> Batch {
        match self {
            Completed::Tagged(batch) => batch,
            Completed::Typed { columns, rows, first_line } => Batch {
                rows: rows as u32,
                columns: columns.into_iter().map(TypedColumn::into_tagged).collect(),
                lines: (first_line..first_line + rows as u64).collect(),
            },
        }
    }

    fn into_typed(self) -> TypedBatch {
        match self {
            Completed::Tagged(Batch { rows, columns, lines }) => TypedBatch {
                rows,
                columns: columns
                    .into_iter()
                    .map(|Column { name, types, ends, data }| WireColumn {
                        name,
                        valid: Vec::new(),
                        values: WireValues::Mixed(TaggedValues { types, ends, data }),
                    })
                    .collect(),
                lines,
                first_line: 0,
            },
            Completed::Typed { columns, rows, first_line } => TypedBatch {
                rows: rows as u32,
                columns: columns.into_iter().map(TypedColumn::into_wire).collect(),
                lines: Vec::new(),
                first_line,
            },
        }
    }
}

/// Where a parser puts its results: records through [`Emitter::batch`] and [`Emitter::end_row`], refused
/// rows through [`Emitter::reject`].
#[derive(Default)]
pub struct Emitter {
    current: BatchBuilder,
    completed: Vec<Completed>,
    rejects: Vec<RejectedRow>,
}

impl Emitter {
    /// The batch being built.
    pub fn batch(&mut self) -> &mut BatchBuilder {
        &mut self.current
    }

    /// Ends the current row, which starts on 1-based line `line` of the input.
    pub fn end_row(&mut self, line: u64) {
        self.current.end_row(line);
        if self.current.is_full() {
            self.completed.extend(self.current.take().map(Completed::Tagged));
        }
    }

    /// Refuses a row: nothing of it is kept but its line, the reason and up to 1 KiB of its raw bytes.
    pub fn reject(&mut self, line: u64, reason: impl Into<String>, raw: &[u8]) {
        self.rejects.push(RejectedRow { line, reason: reason.into(), raw: raw_text(raw) });
    }

    /// Hands on a whole batch built column by column, after whatever was built row by row. Each column
    /// holds one value per entry of `lines` (the 1-based line, or record number, of each row).
    ///
    /// # Panics
    /// Where a column's length differs from `lines`': a bug in the parser, which the host sees as a crash
    /// of the plugin rather than a malformed batch.
    pub fn emit_columns(&mut self, columns: Vec<ColumnValues>, lines: Vec<u64>) {
        if lines.is_empty() {
            return;
        }
        for column in &columns {
            assert_eq!(column.len(), lines.len(), "column `{}` holds one value per row", column.builder.name);
        }
        self.completed.extend(self.current.take().map(Completed::Tagged));
        self.completed.push(Completed::Tagged(Batch {
            rows: lines.len() as u32,
            columns: columns.into_iter().map(ColumnValues::into_column).collect(),
            lines,
        }));
    }

    /// Hands on a whole batch of `rows` records in typed columns (contract 1.3.0), numbered from
    /// `first_line` (1-based, the record number of a column-major file), after whatever was built row by
    /// row: each column's buffer crosses to the host as it is, and no line number per record does.
    ///
    /// # Panics
    /// Where a column does not hold `rows` values, or `first_line` is 0, as [`Emitter::emit_columns`].
    pub fn emit_typed(&mut self, columns: Vec<TypedColumn>, rows: usize, first_line: u64) {
        if rows == 0 {
            return;
        }
        assert!(first_line > 0, "lines are numbered from 1");
        for column in &columns {
            assert_eq!(column.len(), rows, "column `{}` holds one value per row", column.name());
        }
        self.completed.extend(self.current.take().map(Completed::Tagged));
        self.completed.push(Completed::Typed { columns, rows, first_line });
    }

    /// The completed batches (in the 1.0 layout) and the rejects so far; a batch still filling is kept.
    pub(crate) fn take_completed(&mut self) -> Output {
        let batches = self.completed.drain(..).map(Completed::into_tagged).collect();
        Output { batches, rejects: std::mem::take(&mut self.rejects) }
    }

    /// As [`Emitter::take_completed`], as typed batches (contract 1.3.0).
    pub(crate) fn take_completed_typed(&mut self) -> TypedOutput {
        let batches = self.completed.drain(..).map(Completed::into_typed).collect();
        TypedOutput { batches, rejects: std::mem::take(&mut self.rejects) }
    }

    /// Everything, including the batch still filling: the input has ended.
    pub(crate) fn take_all(&mut self) -> Output {
        self.completed.extend(self.current.take().map(Completed::Tagged));
        self.take_completed()
    }

    /// As [`Emitter::take_all`], as typed batches (contract 1.3.0).
    pub(crate) fn take_all_typed(&mut self) -> TypedOutput {
        self.completed.extend(self.current.take().map(Completed::Tagged));
        self.take_completed_typed()
    }
}
