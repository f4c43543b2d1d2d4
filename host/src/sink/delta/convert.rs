//! Sluice's record batches as Arrow batches of a Delta table's schema: the lineage columns first, then the
//! table's columns, each typed by the first value it met (see `sink::column`).

use crate::batch::{RecordBatch, Value};
use crate::sink::column::ColumnType;
use deltalake::arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, Int64Builder, RecordBatch as ArrowBatch, StringBuilder,
};
use deltalake::arrow::datatypes::{DataType as ArrowType, Field, Schema, SchemaRef};
use deltalake::kernel::{DataType, Metadata, MetadataExt, StructField, StructType};
use std::sync::Arc;

/// Where each row came from: the object, its line, and the run that loaded it.
pub const LINEAGE: [(&str, ColumnType); 3] = [
    ("_sluice_object", ColumnType::Text),
    ("_sluice_line", ColumnType::Integer),
    ("_sluice_run", ColumnType::Integer),
];

/// A column of a table, Sluice's lineage left out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableColumn {
    pub name: String,
    pub kind: ColumnType,
}

fn delta_type(kind: ColumnType) -> DataType {
    match kind {
        ColumnType::Boolean => DataType::BOOLEAN,
        ColumnType::Integer => DataType::LONG,
        ColumnType::Float => DataType::DOUBLE,
        // JSON is kept as its text: Delta has no JSON type, and every engine parses text as JSON.
        ColumnType::Text | ColumnType::Json => DataType::STRING,
    }
}

pub fn arrow_type(kind: ColumnType) -> ArrowType {
    match kind {
        ColumnType::Boolean => ArrowType::Boolean,
        ColumnType::Integer => ArrowType::Int64,
        ColumnType::Float => ArrowType::Float64,
        ColumnType::Text | ColumnType::Json => ArrowType::Utf8,
    }
}

/// The lineage columns and `columns`, as every file of the table has them.
fn all(columns: &[TableColumn]) -> impl Iterator<Item = (&str, ColumnType, bool)> {
    LINEAGE
        .iter()
        .map(|&(name, kind)| (name, kind, name == "_sluice_line"))
        .chain(columns.iter().map(|c| (c.name.as_str(), c.kind, true)))
}

/// The table's Delta schema.
pub fn delta_schema(columns: &[TableColumn]) -> Result<StructType, String> {
    StructType::try_new(
        all(columns).map(|(name, kind, nullable)| StructField::new(name, delta_type(kind), nullable)),
    )
    .map_err(|e| e.to_string())
}

/// The table's Arrow schema.
pub fn arrow_schema(columns: &[TableColumn]) -> SchemaRef {
    Arc::new(Schema::new(
        all(columns)
            .map(|(name, kind, nullable)| Field::new(name, arrow_type(kind), nullable))
            .collect::<Vec<_>>(),
    ))
}

/// The metadata with a new schema, the table's id and properties kept.
pub fn with_schema(metadata: Metadata, schema: &StructType) -> Result<Metadata, String> {
    metadata.with_schema(schema).map_err(|e| e.to_string())
}

/// A table's columns from its Delta schema, the lineage left out. JSON columns read back as text, which
/// they are in the files.
pub fn table_columns(schema: &StructType) -> Result<Vec<TableColumn>, String> {
    schema
        .fields()
        .filter(|field| !LINEAGE.iter().any(|(name, _)| name == field.name()))
        .map(|field| {
            let kind = match field.data_type() {
                t if *t == DataType::BOOLEAN => ColumnType::Boolean,
                t if *t == DataType::LONG => ColumnType::Integer,
                t if *t == DataType::DOUBLE => ColumnType::Float,
                t if *t == DataType::STRING => ColumnType::Text,
                other => return Err(format!(
                    "column `{}` of the Delta table is {other:?}, a type Sluice does not write; the table was not made by Sluice",
                    field.name()
                )),
            };
            Ok(TableColumn { name: field.name().clone(), kind })
        })
        .collect()
}

/// The rows of `batch` not `rejected`, as an Arrow batch of `columns` (a column the batch lacks is null).
/// Every value is known to fit its column (`ColumnType::fits`).
pub fn to_arrow(
    batch: &RecordBatch,
    rejected: &[bool],
    columns: &[TableColumn],
    object: &str,
    run_id: i64,
) -> Result<ArrowBatch, String> {
    let rows: Vec<usize> = (0..batch.num_rows()).filter(|&row| !rejected[row]).collect();
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(LINEAGE.len() + columns.len());
    let mut objects = StringBuilder::with_capacity(rows.len(), rows.len() * object.len());
    let mut lines = Int64Builder::with_capacity(rows.len());
    let mut runs = Int64Builder::with_capacity(rows.len());
    for &row in &rows {
        objects.append_value(object);
        lines.append_value(batch.line(row) as i64);
        runs.append_value(run_id);
    }
    arrays.push(Arc::new(objects.finish()));
    arrays.push(Arc::new(lines.finish()));
    arrays.push(Arc::new(runs.finish()));
    for column in columns {
        let source = batch.columns().iter().find(|c| c.name() == column.name);
        let value = |row: usize| -> Result<Value<'_>, String> {
            match source {
                Some(source) => source.value(row).map_err(|e| e.to_string()),
                None => Ok(Value::Null),
            }
        };
        let array: ArrayRef = match column.kind {
            ColumnType::Boolean => {
                let mut builder = BooleanBuilder::with_capacity(rows.len());
                for &row in &rows {
                    match value(row)? {
                        Value::Boolean(b) => builder.append_value(b),
                        _ => builder.append_null(),
                    }
                }
                Arc::new(builder.finish())
            }
            ColumnType::Integer => {
                let mut builder = Int64Builder::with_capacity(rows.len());
                for &row in &rows {
                    match value(row)? {
                        Value::Integer(i) => builder.append_value(i),
                        _ => builder.append_null(),
                    }
                }
                Arc::new(builder.finish())
            }
            ColumnType::Float => {
                let mut builder = Float64Builder::with_capacity(rows.len());
                for &row in &rows {
                    match value(row)? {
                        Value::Integer(i) => builder.append_value(i as f64),
                        Value::Float(f) => builder.append_value(f),
                        _ => builder.append_null(),
                    }
                }
                Arc::new(builder.finish())
            }
            ColumnType::Text | ColumnType::Json => {
                let mut builder = StringBuilder::with_capacity(rows.len(), rows.len() * 8);
                for &row in &rows {
                    match value(row)? {
                        Value::Null => builder.append_null(),
                        Value::Boolean(b) => builder.append_value(if b { "true" } else { "false" }),
                        Value::Integer(i) => builder.append_value(itoa::Buffer::new().format(i)),
                        Value::Float(f) => builder.append_value(f.to_string()),
                        Value::Text(text) | Value::Json(text) => builder.append_value(text),
                    }
                }
                Arc::new(builder.finish())
            }
        };
        arrays.push(array);
    }
    ArrowBatch::try_new(arrow_schema(columns), arrays).map_err(|e| e.to_string())
}
