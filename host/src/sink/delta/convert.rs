//! Sluice's record batches as Arrow batches of a Delta table's schema: the lineage columns first, then the
//! table's columns, each typed by the first value it met (see `sink::column`).

use crate::batch::RecordBatch;
use crate::sink::column::ColumnType;
use deltalake::arrow::array::{
    ArrayRef, BooleanArray, Int64Array, RecordBatch as ArrowBatch, StringArray, new_null_array,
};
use deltalake::arrow::buffer::{Buffer, OffsetBuffer, ScalarBuffer};
use deltalake::arrow::compute::filter_record_batch;
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
/// Every value is known to fit its column (`ColumnType::fits`). The batch's value buffers become the
/// Arrow arrays' where the layouts agree (text, and integers or floats without nulls), so most columns
/// are not copied; rejected rows are filtered out after.
pub fn to_arrow(
    batch: RecordBatch,
    rejected: &[bool],
    columns: &[TableColumn],
    object: &str,
    run_id: i64,
) -> Result<ArrowBatch, String> {
    let rows = batch.num_rows();
    let (mut given, lines) = batch.into_parts();
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(LINEAGE.len() + columns.len());
    arrays.push(Arc::new(repeated(object, rows)?));
    arrays.push(Arc::new(Int64Array::from_iter_values(lines.into_iter().map(|line| line as i64))));
    arrays.push(Arc::new(Int64Array::from_value(run_id, rows)));
    for column in columns {
        let array = match given.iter().position(|c| c.name() == column.name) {
            Some(index) => given.swap_remove(index).into_arrow_as(rows, &arrow_type(column.kind)),
            None => Ok(new_null_array(&arrow_type(column.kind), rows)),
        };
        arrays.push(array.map_err(|e| e.to_string())?);
    }
    let all = ArrowBatch::try_new(arrow_schema(columns), arrays).map_err(|e| e.to_string())?;
    if !rejected.contains(&true) {
        return Ok(all);
    }
    let kept = BooleanArray::from_iter(rejected.iter().map(|&r| Some(!r)));
    filter_record_batch(&all, &kept).map_err(|e| e.to_string())
}

/// `value` in each of `rows` rows, its bytes repeated in one buffer.
fn repeated(value: &str, rows: usize) -> Result<StringArray, String> {
    let ends = (0..=rows).map(|row| i32::try_from(row * value.len()));
    let offsets =
        ends.collect::<Result<Vec<i32>, _>>().map_err(|_| "over 2 GiB of object names".to_string())?;
    let values = Buffer::from_vec(value.as_bytes().repeat(rows));
    StringArray::try_new(OffsetBuffer::new(ScalarBuffer::from(offsets)), values, None)
        .map_err(|e| e.to_string())
}
