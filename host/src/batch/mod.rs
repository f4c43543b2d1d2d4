//! Record batches as the host holds them: the column-major buffers a plugin returned, checked once.
//!
//! A batch is plain data. The plugin host takes each contract's wire types apart into the layouts here
//! (`plugin::wire`), and a column is checked as it is made ([`Column::tagged`], [`Column::typed`],
//! [`Column::spans`]).

use std::fmt;
use std::io::{self, Write};

mod arrow;
mod rejected;
mod spans;
mod typed;

pub use rejected::{RejectStage, RejectedRow};
pub use sluice_as_text::TimeUnit;
pub(crate) use spans::UncheckedSpans;
pub(crate) use typed::TypedValues;
/// The Arrow crates [`RecordBatch::into_arrow`] converts to, at the version Sluice builds with.
pub use {arrow_array, arrow_schema};

/// The type tags of `value-type` in `wit/sluice.wit`, by discriminant.
pub(crate) const NULL: u8 = 0;
const BOOLEAN: u8 = 1;
const INTEGER: u8 = 2;
const FLOAT: u8 = 3;
pub(crate) const TEXT: u8 = 4;
const JSON: u8 = 5;

/// One value of a record.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value<'a> {
    /// No value.
    Null,
    /// `true` or `false`.
    Boolean(bool),
    /// A 64-bit signed integer.
    Integer(i64),
    /// A 64-bit float.
    Float(f64),
    /// Text.
    Text(&'a str),
    /// Nested JSON (an object, an array, or a number beyond `i64` and `f64`), as JSON text.
    Json(&'a str),
    /// An instant, or a wall-clock date-time, from a typed column (contract 1.3.0). Sinks store it as its
    /// RFC 3339 text ([`Timestamp`]'s `Display`), as a plugin that writes timestamps as text would have.
    Timestamp(Timestamp),
}

/// A timestamp as a typed column holds it: a count of `unit`s since 1970-01-01T00:00:00.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timestamp {
    /// The count.
    pub value: i64,
    /// What it counts.
    pub unit: TimeUnit,
    /// An instant in UTC (written with `Z`), or a date-time that names no zone (written without an offset).
    pub utc: bool,
}

impl fmt::Display for Timestamp {
    /// RFC 3339 with the digits of its unit, as `sluice-as-text` writes it for every plugin.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        sluice_as_text::write_timestamp(f, self.value, self.unit, self.utc)
    }
}

/// A value held invalid UTF-8 (only a faulty plugin can produce one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidText {
    /// The column's name.
    pub column: String,
    /// The row, from 0.
    pub row: usize,
}

impl fmt::Display for InvalidText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid UTF-8 in column `{}` of row {}", self.column, self.row)
    }
}

impl std::error::Error for InvalidText {}

/// One column: its name, and its values in one of the layouts a plugin may hand over.
#[derive(Clone, Debug)]
pub struct Column {
    name: String,
    values: Values,
}

/// A column's values.
#[derive(Clone, Debug)]
enum Values {
    /// Contract 1.0's layout: a type tag and an end offset per row.
    Tagged(Tags),
    /// One type per column (contract 1.3.0), with the rows that hold a value.
    Typed { valid: typed::Validity, values: typed::TypedValues },
}

/// Contract 1.0's layout of a column: per row a type tag and an end offset into `data`.
#[derive(Clone, Debug, Default)]
pub(crate) struct Tags {
    pub(crate) types: Vec<u8>,
    pub(crate) ends: Vec<u32>,
    pub(crate) data: Vec<u8>,
}

/// Row `row`'s bytes of `data`, ended by `ends` (each value's end offset).
fn span<'a>(ends: &[u32], data: &'a [u8], row: usize) -> &'a [u8] {
    let start = if row == 0 { 0 } else { ends[row - 1] as usize };
    &data[start..ends[row] as usize]
}

impl Tags {
    /// Checks the layout: a tag and an end offset per row, offsets ascending within the data, tags known,
    /// and fixed-width values of their width. Says what is wrong after the column's name.
    fn check(&self, rows: usize) -> Result<(), String> {
        if self.types.len() != rows || self.ends.len() != rows {
            return Err(format!(
                "has {} types and {} offsets for {rows} rows",
                self.types.len(),
                self.ends.len()
            ));
        }
        let mut start = 0u32;
        for (row, (&tag, &end)) in self.types.iter().zip(&self.ends).enumerate() {
            let width = end.checked_sub(start).filter(|_| end as usize <= self.data.len());
            let valid = match (tag, width) {
                (_, None) => false,
                (NULL, Some(width)) => width == 0,
                (BOOLEAN, Some(width)) => width == 1,
                (INTEGER | FLOAT, Some(width)) => width == 8,
                (TEXT | JSON, Some(_)) => true,
                _ => false,
            };
            if !valid {
                return Err(format!("row {row}: bad type tag {tag} or offset {end}"));
            }
            start = end;
        }
        Ok(())
    }

    fn value<'a>(&'a self, name: &str, row: usize) -> Result<Value<'a>, InvalidText> {
        let bytes = span(&self.ends, &self.data, row);
        let text = || std::str::from_utf8(bytes).map_err(|_| InvalidText { column: name.to_string(), row });
        Ok(match self.types[row] {
            NULL => Value::Null,
            BOOLEAN => Value::Boolean(bytes[0] != 0),
            INTEGER => Value::Integer(i64::from_le_bytes(bytes.try_into().expect("checked width"))),
            FLOAT => Value::Float(f64::from_le_bytes(bytes.try_into().expect("checked width"))),
            TEXT => Value::Text(text()?),
            _ => Value::Json(text()?),
        })
    }

    /// Appends a value: the layout the host builds batches in itself, and the one a typed column is
    /// written in for a template (which takes 1.0 batches).
    fn push(&mut self, value: Value<'_>) {
        let tag = match value {
            Value::Null => NULL,
            Value::Boolean(b) => {
                self.data.push(u8::from(b));
                BOOLEAN
            }
            Value::Integer(i) => {
                self.data.extend_from_slice(&i.to_le_bytes());
                INTEGER
            }
            Value::Float(f) => {
                self.data.extend_from_slice(&f.to_le_bytes());
                FLOAT
            }
            Value::Text(text) => {
                self.data.extend_from_slice(text.as_bytes());
                TEXT
            }
            Value::Json(json) => {
                self.data.extend_from_slice(json.as_bytes());
                JSON
            }
            Value::Timestamp(timestamp) => {
                write!(self.data, "{timestamp}").expect("a Vec takes any bytes");
                TEXT
            }
        };
        self.types.push(tag);
        self.ends.push(self.data.len() as u32);
    }
}

impl Column {
    /// The column's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The value of `row`; an error only for text that is not UTF-8.
    pub fn value(&self, row: usize) -> Result<Value<'_>, InvalidText> {
        match &self.values {
            Values::Tagged(tags) => tags.value(&self.name, row),
            Values::Typed { valid, .. } if !valid.is_valid(row) => Ok(Value::Null),
            Values::Typed { values, .. } => values.value(&self.name, row),
        }
    }

    /// A column in contract 1.0's layout, of `rows` rows, its layout checked (see [`Tags::check`]).
    pub(crate) fn tagged(name: String, tags: Tags, rows: usize) -> Result<Column, String> {
        tags.check(rows).map_err(|what| format!("column `{name}` {what}"))?;
        Ok(Column { name, values: Values::Tagged(tags) })
    }

    fn empty(name: &str) -> Column {
        Column { name: name.to_string(), values: Values::Tagged(Tags::default()) }
    }

    /// The column in contract 1.0's layout, a typed column's values written value by value.
    fn into_tags(self, rows: usize) -> (String, Tags) {
        let tags = match self.values {
            Values::Tagged(tags) => tags,
            Values::Typed { .. } => {
                let mut tags = Tags::default();
                for row in 0..rows {
                    // Text was checked to be UTF-8 where a value was taken: a bad one is null here too.
                    tags.push(self.value(row).unwrap_or(Value::Null));
                }
                tags
            }
        };
        (self.name, tags)
    }
}

/// Builds a batch on the host side (records the host makes itself, such as a Stripe sink's results), in
/// the same layout a plugin's batches have.
pub struct BatchBuilder {
    batch: RecordBatch,
}

impl BatchBuilder {
    /// A builder of batches with these columns, in this order.
    pub fn new(columns: &[&str]) -> BatchBuilder {
        BatchBuilder {
            batch: RecordBatch {
                rows: 0,
                columns: columns.iter().map(|c| Column::empty(c)).collect(),
                lines: Lines::Listed(Vec::new()),
            },
        }
    }

    /// Adds one record from `line`, a value per column in the order the builder was made with.
    pub fn push_row(&mut self, line: u64, values: &[Value<'_>]) {
        assert_eq!(values.len(), self.batch.columns.len(), "a value per column");
        for (column, value) in self.batch.columns.iter_mut().zip(values) {
            let Values::Tagged(tags) = &mut column.values else {
                unreachable!("the builder makes tagged columns")
            };
            tags.push(*value);
        }
        let Lines::Listed(lines) = &mut self.batch.lines else { unreachable!("the builder lists lines") };
        lines.push(line);
        self.batch.rows += 1;
    }

    /// The batch built so far.
    pub fn finish(self) -> RecordBatch {
        self.batch
    }
}

/// A batch of records from a format plugin.
#[derive(Clone, Debug)]
pub struct RecordBatch {
    rows: usize,
    columns: Vec<Column>,
    lines: Lines,
}

/// The line each record of a batch starts on.
#[derive(Clone, Debug)]
pub(crate) enum Lines {
    /// One per record.
    Listed(Vec<u64>),
    /// Record `i` starts on line `first + i`, as a column-major file numbers its records (contract
    /// 1.3.0's typed batches): nothing per record is kept.
    From(u64),
}

impl Lines {
    /// The line of each of `rows` records: listed one per record, or numbered from `first_line`.
    pub(crate) fn of(lines: Vec<u64>, first_line: u64, rows: usize) -> Result<Lines, String> {
        Ok(match (lines, first_line) {
            (lines, 0) if lines.len() == rows => Lines::Listed(lines),
            (lines, 0) => return Err(format!("{} line numbers for {rows} rows", lines.len())),
            (lines, first) if lines.is_empty() => match first.checked_add(rows as u64) {
                Some(_) => Lines::From(first),
                None => {
                    return Err(format!(
                        "records numbered from line {first} run past the last line there is"
                    ));
                }
            },
            (lines, first) => {
                return Err(format!(
                    "{} line numbers and a first line ({first}): one or the other",
                    lines.len()
                ));
            }
        })
    }

    fn into_vec(self, rows: usize) -> Vec<u64> {
        match self {
            Lines::Listed(lines) => lines,
            Lines::From(first) => (first..first + rows as u64).collect(),
        }
    }
}

impl RecordBatch {
    /// A batch of `rows` records from columns made (and so checked) for that many rows.
    pub(crate) fn from_columns(rows: usize, columns: Vec<Column>, lines: Lines) -> RecordBatch {
        RecordBatch { rows, columns, lines }
    }

    /// The batch in contract 1.0's layout, as a template takes it (a typed column's values are written in
    /// it), and the line of each record.
    pub(crate) fn to_tagged(&self) -> (Vec<(String, Tags)>, Vec<u64>) {
        let columns = self.columns.iter().map(|column| column.clone().into_tags(self.rows)).collect();
        (columns, self.lines.clone().into_vec(self.rows))
    }

    /// How many records the batch holds.
    pub fn num_rows(&self) -> usize {
        self.rows
    }

    /// Its columns, in the order the plugin gave them.
    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// The 1-based line of the file on which `row` starts.
    pub fn line(&self, row: usize) -> u64 {
        match &self.lines {
            Lines::Listed(lines) => lines[row],
            Lines::From(first) => {
                assert!(row < self.rows, "row {row} of a batch of {}", self.rows);
                first + row as u64
            }
        }
    }

    /// The batch taken apart: its columns, and the line each row starts on.
    pub fn into_parts(self) -> (Vec<Column>, Vec<u64>) {
        let lines = self.lines.into_vec(self.rows);
        (self.columns, lines)
    }

    /// The value of `row` in column number `column`.
    pub fn value(&self, column: usize, row: usize) -> Result<Value<'_>, InvalidText> {
        self.columns[column].value(row)
    }

    /// Writes `row` as one JSON object on one line, every column a key.
    pub fn write_json_row(&self, row: usize, out: &mut impl Write) -> io::Result<()> {
        out.write_all(b"{")?;
        let mut first = true;
        for column in &self.columns {
            let value = column.value(row).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            if !first {
                out.write_all(b",")?;
            }
            first = false;
            serde_json::to_writer(&mut *out, column.name())?;
            out.write_all(b":")?;
            match value {
                Value::Null => out.write_all(b"null")?,
                Value::Boolean(b) => out.write_all(if b { b"true" } else { b"false" })?,
                Value::Integer(i) => write!(out, "{i}")?,
                Value::Float(f) => serde_json::to_writer(&mut *out, &f)?,
                Value::Text(s) => serde_json::to_writer(&mut *out, s)?,
                Value::Timestamp(t) => write!(out, "\"{t}\"")?,
                Value::Json(s) => {
                    let raw: &serde_json::value::RawValue = serde_json::from_str(s).map_err(|e| {
                        io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("column `{}`: not JSON: {e}", column.name),
                        )
                    })?;
                    out.write_all(raw.get().as_bytes())?;
                }
            }
        }
        out.write_all(b"}\n")
    }
}
