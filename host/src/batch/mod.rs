//! Record batches as the host holds them: the column-major buffers a plugin returned, checked once.

use std::fmt;
use std::io::{self, Write};

use crate::plugin::format_wire::{Batch as WireBatch, Column as WireColumn};

mod arrow;
/// The Arrow crates [`RecordBatch::into_arrow`] converts to, at the version Sluice builds with.
pub use {arrow_array, arrow_schema};

/// The type tags of `value-type` in `wit/sluice.wit`, by discriminant.
const NULL: u8 = 0;
const BOOLEAN: u8 = 1;
const INTEGER: u8 = 2;
const FLOAT: u8 = 3;
const TEXT: u8 = 4;
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

/// One column: per row a type tag and an end offset into `data`.
#[derive(Clone, Debug)]
pub struct Column {
    name: String,
    types: Vec<u8>,
    ends: Vec<u32>,
    data: Vec<u8>,
}

impl Column {
    /// The column's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn bytes(&self, row: usize) -> &[u8] {
        let start = if row == 0 { 0 } else { self.ends[row - 1] as usize };
        &self.data[start..self.ends[row] as usize]
    }

    /// The value of `row`; an error only for text that is not UTF-8.
    pub fn value(&self, row: usize) -> Result<Value<'_>, InvalidText> {
        let bytes = self.bytes(row);
        let text = || std::str::from_utf8(bytes).map_err(|_| InvalidText { column: self.name.clone(), row });
        Ok(match self.types[row] {
            NULL => Value::Null,
            BOOLEAN => Value::Boolean(bytes[0] != 0),
            INTEGER => Value::Integer(i64::from_le_bytes(bytes.try_into().expect("checked width"))),
            FLOAT => Value::Float(f64::from_le_bytes(bytes.try_into().expect("checked width"))),
            TEXT => Value::Text(text()?),
            _ => Value::Json(text()?),
        })
    }
}

impl Column {
    fn empty(name: &str) -> Column {
        Column { name: name.to_string(), types: Vec::new(), ends: Vec::new(), data: Vec::new() }
    }

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
        };
        self.types.push(tag);
        self.ends.push(self.data.len() as u32);
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
                lines: Vec::new(),
            },
        }
    }

    /// Adds one record from `line`, a value per column in the order the builder was made with.
    pub fn push_row(&mut self, line: u64, values: &[Value<'_>]) {
        assert_eq!(values.len(), self.batch.columns.len(), "a value per column");
        for (column, value) in self.batch.columns.iter_mut().zip(values) {
            column.push(*value);
        }
        self.batch.lines.push(line);
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
    lines: Vec<u64>,
}

impl RecordBatch {
    /// Takes a batch as it crossed the component boundary, checking its layout: every column has a tag
    /// and an end offset per row, offsets ascend within the data, tags are known, and fixed-width values
    /// have their width. Text is checked to be UTF-8 when it is read.
    pub(crate) fn from_wire(batch: WireBatch) -> Result<Self, String> {
        let rows = batch.rows as usize;
        if batch.lines.len() != rows {
            return Err(format!("{} line numbers for {rows} rows", batch.lines.len()));
        }
        let mut columns = Vec::with_capacity(batch.columns.len());
        for column in batch.columns {
            if column.types.len() != rows || column.ends.len() != rows {
                return Err(format!(
                    "column `{}` has {} types and {} offsets for {rows} rows",
                    column.name,
                    column.types.len(),
                    column.ends.len()
                ));
            }
            let mut start = 0u32;
            for (row, (&tag, &end)) in column.types.iter().zip(&column.ends).enumerate() {
                let width = end.checked_sub(start).filter(|_| end as usize <= column.data.len());
                let valid = match (tag, width) {
                    (_, None) => false,
                    (NULL, Some(width)) => width == 0,
                    (BOOLEAN, Some(width)) => width == 1,
                    (INTEGER | FLOAT, Some(width)) => width == 8,
                    (TEXT | JSON, Some(_)) => true,
                    _ => false,
                };
                if !valid {
                    return Err(format!(
                        "column `{}` row {row}: bad type tag {tag} or offset {end}",
                        column.name
                    ));
                }
                start = end;
            }
            columns.push(Column {
                name: column.name,
                types: column.types,
                ends: column.ends,
                data: column.data,
            });
        }
        Ok(RecordBatch { rows, columns, lines: batch.lines })
    }

    /// The batch in the form it crosses the component boundary in (to hand it to a template).
    pub(crate) fn to_wire(&self) -> WireBatch {
        WireBatch {
            rows: self.rows as u32,
            columns: self
                .columns
                .iter()
                .map(|column| WireColumn {
                    name: column.name.clone(),
                    types: column.types.clone(),
                    ends: column.ends.clone(),
                    data: column.data.clone(),
                })
                .collect(),
            lines: self.lines.clone(),
        }
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
        self.lines[row]
    }

    /// The batch taken apart: its columns, and the line each row starts on.
    pub fn into_parts(self) -> (Vec<Column>, Vec<u64>) {
        (self.columns, self.lines)
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
