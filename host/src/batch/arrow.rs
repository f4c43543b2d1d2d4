//! Record batches as Apache Arrow `RecordBatch`es, for DataFusion, Polars, DuckDB.
//!
//! Each column becomes the Arrow type its values share, taking over Sluice's buffers where the layouts
//! agree:
//!
//! | values | Arrow type | buffers |
//! |---|---|---|
//! | text (and nulls) | `Utf8` | the value bytes are taken as they are; the offsets are rebuilt |
//! | JSON (and nulls) | `Utf8`, extension `arrow.json` | as text |
//! | integers, no nulls | `Int64` | taken as they are (little-endian, 8-byte aligned) |
//! | floats, no nulls | `Float64` | taken as they are |
//! | integers or floats with nulls, or both | `Int64` / `Float64` | copied (a null holds no bytes in Sluice's layout) |
//! | booleans | `Boolean` | copied (Arrow packs bits) |
//! | only nulls | `Null` | none |
//! | mixed types | `Utf8`, each value as its text | copied |
//!
//! A typed column (contract 1.3.0) becomes the Arrow type of its values (timestamps `Timestamp` with
//! their unit, `UTC` where they are instants), its buffer and validity bitmap taken over as they are.
//!
//! Integers and floats together become `Float64`, as CSV readers do; an integer beyond 2^53 then
//! loses precision.

use super::typed::{TypedValues, Validity};
use super::{BOOLEAN, Column, FLOAT, INTEGER, JSON, NULL, RecordBatch, TEXT, Tags, TimeUnit, Value, Values};
use arrow_array::{
    ArrayRef, BooleanArray, Float64Array, Int64Array, NullArray, RecordBatch as ArrowBatch, StringArray,
    TimestampMicrosecondArray, TimestampMillisecondArray, TimestampNanosecondArray, TimestampSecondArray,
};
use arrow_buffer::{BooleanBuffer, Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow_schema::{ArrowError, DataType, Field, Schema};
use std::collections::HashMap;
use std::sync::Arc;

/// The Arrow canonical extension type of JSON held as UTF-8 text.
const JSON_EXTENSION: &str = "arrow.json";

impl RecordBatch {
    /// The batch as an Arrow `RecordBatch`, a field per column in the same order (see the module's table
    /// for the types and which buffers are taken over without a copy). An error only for text that is
    /// not UTF-8, which only a faulty plugin makes.
    pub fn into_arrow(self) -> Result<ArrowBatch, ArrowError> {
        let rows = self.rows;
        let (fields, arrays): (Vec<Field>, Vec<ArrayRef>) =
            self.columns.into_iter().map(|column| column.into_arrow(rows)).collect::<Result<_, _>>()?;
        ArrowBatch::try_new_with_options(
            Arc::new(Schema::new(fields)),
            arrays,
            &arrow_array::RecordBatchOptions::new().with_row_count(Some(rows)),
        )
    }
}

/// The types a column's values have, as bits by type tag.
fn tags_present(types: &[u8]) -> u8 {
    types.iter().fold(0, |present, &tag| present | 1 << tag)
}

const fn bit(tag: u8) -> u8 {
    1 << tag
}

impl Column {
    fn into_arrow(self, rows: usize) -> Result<(Field, ArrayRef), ArrowError> {
        let (valid, values) = match self.values {
            Values::Tagged(tags) => return Tagged { name: self.name, tags }.into_arrow(rows),
            // Text drawn from a dictionary becomes plain text, as its reader would expect of a table.
            Values::Typed { values: TypedValues::Dictionary { .. }, .. } => {
                let (name, tags) = self.into_tags(rows);
                return Tagged { name, tags }.into_arrow(rows);
            }
            // Text still in a span parser's bytes is gathered into a buffer of its own.
            Values::Typed { valid, values: TypedValues::Spans(spans) } => {
                let (ends, data) = spans.gather();
                (valid, TypedValues::Text { ends, data, json: false })
            }
            Values::Typed { valid, values } => (valid, values),
        };
        let nulls = null_buffer(&valid, rows);
        let nullable = nulls.is_some();
        let field = |data_type: DataType| Field::new(self.name.clone(), data_type, nullable);
        Ok(match values {
            TypedValues::Booleans(values) => {
                let values = BooleanBuffer::from_iter(values.iter().map(|&b| b != 0));
                (field(DataType::Boolean), Arc::new(BooleanArray::new(values, nulls)))
            }
            TypedValues::Integers(values) => {
                (field(DataType::Int64), Arc::new(Int64Array::try_new(ScalarBuffer::from(values), nulls)?))
            }
            TypedValues::Floats(values) => (
                field(DataType::Float64),
                Arc::new(Float64Array::try_new(ScalarBuffer::from(values), nulls)?),
            ),
            TypedValues::Text { ends, data, json } => {
                let field = match json {
                    false => field(DataType::Utf8),
                    true => field(DataType::Utf8).with_metadata(HashMap::from([(
                        "ARROW:extension:name".to_string(),
                        JSON_EXTENSION.to_string(),
                    )])),
                };
                (field, Arc::new(strings(&self.name, &ends, data, nulls)?))
            }
            TypedValues::Dictionary { .. } => unreachable!("written as text above"),
            TypedValues::Spans(_) => unreachable!("gathered above"),
            TypedValues::Timestamps { unit, utc, values } => {
                let zone = utc.then(|| Arc::from("UTC"));
                let values = ScalarBuffer::from(values);
                let array: ArrayRef = match unit {
                    TimeUnit::Second => {
                        Arc::new(TimestampSecondArray::try_new(values, nulls)?.with_timezone_opt(zone))
                    }
                    TimeUnit::Millisecond => {
                        Arc::new(TimestampMillisecondArray::try_new(values, nulls)?.with_timezone_opt(zone))
                    }
                    TimeUnit::Microsecond => {
                        Arc::new(TimestampMicrosecondArray::try_new(values, nulls)?.with_timezone_opt(zone))
                    }
                    TimeUnit::Nanosecond => {
                        Arc::new(TimestampNanosecondArray::try_new(values, nulls)?.with_timezone_opt(zone))
                    }
                };
                (field(array.data_type().clone()), array)
            }
        })
    }

    /// The column as an Arrow array of `data_type` (`Utf8`, `Int64`, `Float64` or `Boolean`), the type a
    /// table's column has: a value of another type is null there, except that integers become floats and
    /// every value becomes its text in `Utf8`. Buffers are taken over where the layouts agree, as in
    /// [`RecordBatch::into_arrow`].
    pub fn into_arrow_as(self, rows: usize, data_type: &DataType) -> Result<ArrayRef, ArrowError> {
        if let Values::Typed { valid, values } = &self.values {
            let nulls = null_buffer(valid, rows);
            match (values, data_type) {
                (TypedValues::Integers(values), DataType::Int64) => {
                    return Ok(Arc::new(Int64Array::try_new(ScalarBuffer::from(values.clone()), nulls)?));
                }
                (TypedValues::Floats(values), DataType::Float64) => {
                    return Ok(Arc::new(Float64Array::try_new(ScalarBuffer::from(values.clone()), nulls)?));
                }
                (TypedValues::Text { ends, data, .. }, DataType::Utf8) => {
                    return Ok(Arc::new(strings(&self.name, ends, data.clone(), nulls)?));
                }
                (TypedValues::Spans(spans), DataType::Utf8) => {
                    let (ends, data) = spans.gather();
                    return Ok(Arc::new(strings(&self.name, &ends, data, nulls)?));
                }
                _ => {}
            }
        }
        let (name, tags) = self.into_tags(rows);
        Tagged { name, tags }.into_arrow_as(rows, data_type)
    }
}

/// Arrow's validity buffer of a typed column, where some row is null.
fn null_buffer(valid: &Validity, rows: usize) -> Option<NullBuffer> {
    let bits = valid.bitmap()?;
    Some(NullBuffer::new(BooleanBuffer::new(Buffer::from(bits), 0, rows)))
}

/// Text values ending at `ends` of `data`: the value bytes become Arrow's values buffer as they are.
fn strings(
    name: &str,
    ends: &[u32],
    data: Vec<u8>,
    nulls: Option<NullBuffer>,
) -> Result<StringArray, ArrowError> {
    // The ends ascend (checked when the batch was taken), so the last bounds them all.
    if ends.last().is_some_and(|&end| i32::try_from(end).is_err()) {
        return Err(ArrowError::ComputeError(format!("column `{name}` holds over 2 GiB of text")));
    }
    let offsets: Vec<i32> = std::iter::once(0).chain(ends.iter().map(|&end| end as i32)).collect();
    StringArray::try_new(OffsetBuffer::new(ScalarBuffer::from(offsets)), Buffer::from_vec(data), nulls)
}

/// A column in contract 1.0's layout, as the conversions below read it.
struct Tagged {
    name: String,
    tags: Tags,
}

impl Tagged {
    fn value(&self, row: usize) -> Result<Value<'_>, super::InvalidText> {
        self.tags.value(&self.name, row)
    }

    fn into_arrow(self, rows: usize) -> Result<(Field, ArrayRef), ArrowError> {
        let present = tags_present(&self.tags.types) & !bit(NULL);
        let nulls = self
            .tags
            .types
            .contains(&NULL)
            .then(|| NullBuffer::from_iter(self.tags.types.iter().map(|&t| t != NULL)));
        let nullable = nulls.is_some();
        let name = self.name.clone();
        let field = |data_type: DataType| Field::new(name.clone(), data_type, nullable);
        Ok(match present {
            0 => (field(DataType::Null), Arc::new(NullArray::new(rows))),
            p if p == bit(TEXT) => (field(DataType::Utf8), Arc::new(self.into_strings(nulls)?)),
            p if p == bit(JSON) => {
                let metadata =
                    HashMap::from([("ARROW:extension:name".to_string(), JSON_EXTENSION.to_string())]);
                (field(DataType::Utf8).with_metadata(metadata), Arc::new(self.into_strings(nulls)?))
            }
            p if p == bit(INTEGER) => {
                let values = match nulls {
                    None => fixed_width(self.tags.data, rows, i64::from_le_bytes),
                    Some(_) => self.expanded(rows, |value| match value {
                        Value::Integer(i) => i,
                        _ => 0,
                    }),
                };
                (field(DataType::Int64), Arc::new(Int64Array::try_new(values, nulls)?))
            }
            p if p == bit(FLOAT) => {
                let values = match nulls {
                    None => fixed_width(self.tags.data, rows, f64::from_le_bytes),
                    Some(_) => self.expanded(rows, as_float),
                };
                (field(DataType::Float64), Arc::new(Float64Array::try_new(values, nulls)?))
            }
            p if p == bit(INTEGER) | bit(FLOAT) => {
                let values = self.expanded(rows, as_float);
                (field(DataType::Float64), Arc::new(Float64Array::try_new(values, nulls)?))
            }
            p if p == bit(BOOLEAN) => (field(DataType::Boolean), Arc::new(self.booleans(rows))),
            _ => (field(DataType::Utf8), Arc::new(self.as_text(rows)?)),
        })
    }

    fn into_arrow_as(self, rows: usize, data_type: &DataType) -> Result<ArrayRef, ArrowError> {
        let present = tags_present(&self.tags.types);
        let valid_where = |tags: u8| {
            (present & !tags != 0)
                .then(|| NullBuffer::from_iter(self.tags.types.iter().map(|&t| bit(t) & tags != 0)))
        };
        Ok(match data_type {
            DataType::Utf8 if present & !(bit(NULL) | bit(TEXT) | bit(JSON)) == 0 => {
                let nulls = valid_where(bit(TEXT) | bit(JSON));
                Arc::new(self.into_strings(nulls)?)
            }
            DataType::Utf8 => Arc::new(self.as_text(rows)?),
            DataType::Int64 => {
                let nulls = valid_where(bit(INTEGER));
                let values = match nulls {
                    None => fixed_width(self.tags.data, rows, i64::from_le_bytes),
                    Some(_) => self.expanded(rows, |value| match value {
                        Value::Integer(i) => i,
                        _ => 0,
                    }),
                };
                Arc::new(Int64Array::try_new(values, nulls)?)
            }
            DataType::Float64 => {
                let nulls = valid_where(bit(INTEGER) | bit(FLOAT));
                let values = match nulls {
                    None if present == bit(FLOAT) => fixed_width(self.tags.data, rows, f64::from_le_bytes),
                    _ => self.expanded(rows, as_float),
                };
                Arc::new(Float64Array::try_new(values, nulls)?)
            }
            DataType::Boolean => Arc::new(self.booleans(rows)),
            other => {
                return Err(ArrowError::NotYetImplemented(format!(
                    "column `{}` as {other}: Sluice's values become Utf8, Int64, Float64 or Boolean",
                    self.name
                )));
            }
        })
    }

    fn booleans(&self, rows: usize) -> BooleanArray {
        (0..rows)
            .map(|row| match self.value(row) {
                Ok(Value::Boolean(b)) => Some(b),
                _ => None,
            })
            .collect()
    }

    /// Text (or JSON) values: the value bytes become Arrow's values buffer as they are.
    fn into_strings(self, nulls: Option<NullBuffer>) -> Result<StringArray, ArrowError> {
        strings(&self.name, &self.tags.ends, self.tags.data, nulls)
    }

    /// A fixed-width value per row, nulls as `T::default()` (Arrow's validity buffer marks them).
    fn expanded<T: Default + arrow_buffer::ArrowNativeType>(
        &self,
        rows: usize,
        convert: impl Fn(Value<'_>) -> T,
    ) -> ScalarBuffer<T> {
        (0..rows).map(|row| self.value(row).map(&convert).unwrap_or_default()).collect()
    }

    /// Every value as its text (a column of mixed types).
    fn as_text(&self, rows: usize) -> Result<StringArray, ArrowError> {
        let text = |row| -> Result<Option<String>, ArrowError> {
            let value = self.value(row).map_err(|e| ArrowError::InvalidArgumentError(e.to_string()))?;
            Ok(match value {
                Value::Null => None,
                Value::Boolean(b) => Some(b.to_string()),
                Value::Integer(i) => Some(i.to_string()),
                Value::Float(f) => Some(f.to_string()),
                Value::Text(s) | Value::Json(s) => Some(s.to_string()),
                Value::Timestamp(t) => Some(t.to_string()),
            })
        };
        (0..rows).map(text).collect()
    }
}

fn as_float(value: Value<'_>) -> f64 {
    match value {
        Value::Integer(i) => i as f64,
        Value::Float(f) => f,
        _ => 0.0,
    }
}

/// Eight little-endian bytes per row, taken over as Arrow's values buffer where the machine is
/// little-endian and the bytes are aligned for `T`; copied otherwise.
fn fixed_width<T: arrow_buffer::ArrowNativeType>(
    data: Vec<u8>,
    rows: usize,
    from_le: fn([u8; 8]) -> T,
) -> ScalarBuffer<T> {
    let aligned = data.as_ptr().align_offset(std::mem::align_of::<T>()) == 0;
    if cfg!(target_endian = "little") && aligned {
        return ScalarBuffer::new(Buffer::from_vec(data), 0, rows);
    }
    data.chunks_exact(8).map(|bytes| from_le(bytes.try_into().expect("eight bytes"))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::BatchBuilder;
    use arrow_array::Array;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float64Type, Int64Type};

    #[test]
    fn each_column_becomes_the_arrow_type_its_values_share() {
        let mut builder = BatchBuilder::new(&["id", "name", "amount", "paid", "extra", "note", "mixed"]);
        let row = |id, name, amount, paid, extra, mixed| {
            [Value::Integer(id), name, amount, Value::Boolean(paid), extra, Value::Null, mixed]
        };
        builder.push_row(
            2,
            &row(
                1,
                Value::Text("Ann"),
                Value::Float(12.5),
                true,
                Value::Json("{\"a\":1}"),
                Value::Integer(7),
            ),
        );
        builder
            .push_row(3, &row(2, Value::Null, Value::Integer(3), false, Value::Null, Value::Text("seven")));
        let arrow = builder.finish().into_arrow().unwrap();

        assert_eq!(arrow.num_rows(), 2);
        let schema = arrow.schema();
        let types: Vec<(&str, &DataType, bool)> =
            schema.fields().iter().map(|f| (f.name().as_str(), f.data_type(), f.is_nullable())).collect();
        assert_eq!(
            types,
            [
                ("id", &DataType::Int64, false),
                ("name", &DataType::Utf8, true),
                ("amount", &DataType::Float64, false),
                ("paid", &DataType::Boolean, false),
                ("extra", &DataType::Utf8, true),
                ("note", &DataType::Null, true),
                ("mixed", &DataType::Utf8, false),
            ]
        );
        assert_eq!(schema.field(4).metadata()["ARROW:extension:name"], "arrow.json");
        assert_eq!(arrow.column(0).as_primitive::<Int64Type>().values(), &[1, 2]);
        let names = arrow.column(1).as_string::<i32>();
        assert_eq!((names.value(0), names.is_null(1)), ("Ann", true));
        assert_eq!(arrow.column(2).as_primitive::<Float64Type>().values(), &[12.5, 3.0]);
        let paid = arrow.column(3).as_boolean();
        assert!(paid.value(0) && !paid.value(1));
        assert_eq!(arrow.column(4).as_string::<i32>().value(0), "{\"a\":1}");
        let mixed = arrow.column(6).as_string::<i32>();
        assert_eq!((mixed.value(0), mixed.value(1)), ("7", "seven"));
    }

    #[test]
    fn text_and_integer_values_are_taken_over_without_a_copy() {
        let mut builder = BatchBuilder::new(&["id", "name"]);
        for id in 0..1000 {
            // A null holds no bytes, so a null among the names keeps their buffer as it is too.
            let name = match id % 3 {
                _ if id == 5 => Value::Null,
                0 => Value::Text("x"),
                _ => Value::Text("yz"),
            };
            builder.push_row(id as u64 + 2, &[Value::Integer(id), name]);
        }
        let batch = builder.finish();
        let data = |column: &Column| match &column.values {
            Values::Tagged(tags) => tags.data.as_ptr(),
            Values::Typed { .. } => unreachable!("the builder makes tagged columns"),
        };
        let integers_aligned = data(&batch.columns[0]).align_offset(8) == 0;
        let (ids, names) = (data(&batch.columns[0]), data(&batch.columns[1]));

        let arrow = batch.into_arrow().unwrap();
        let strings = arrow.column(1).as_string::<i32>();
        assert_eq!(strings.values().as_ptr(), names, "the text bytes are Sluice's own");
        assert!(strings.is_null(5));
        assert_eq!((strings.value(3), strings.value(4), strings.value(6)), ("x", "yz", "x"));
        let ints = arrow.column(0).as_primitive::<Int64Type>();
        assert_eq!(ints.value(999), 999);
        // The global allocator aligns a buffer this size to 16 bytes on every platform Sluice builds on;
        // where it did not, the integers are copied, which is right too.
        if integers_aligned {
            assert_eq!(ints.values().inner().as_ptr(), ids, "the integers are Sluice's own bytes");
        }
    }

    #[test]
    fn typed_columns_become_their_arrow_types_taking_their_buffers_over() {
        use crate::batch::Lines;
        let column =
            |name: &str, valid: Vec<u8>, values| Column::typed(name.into(), valid, values, 3).unwrap();
        let stamps =
            TypedValues::Timestamps { unit: TimeUnit::Millisecond, utc: true, values: vec![1_500, 0, 2_000] };
        let batch = RecordBatch::from_columns(
            3,
            vec![
                column("id", vec![], TypedValues::Integers(vec![7, 8, 9])),
                column("at", vec![0b101], stamps),
            ],
            Lines::From(1),
        );
        let arrow = batch.clone().into_arrow().unwrap();
        assert_eq!(arrow.schema().field(0).data_type(), &DataType::Int64);
        assert!(!arrow.schema().field(0).is_nullable());
        let at = arrow.schema().field(1).data_type().clone();
        assert_eq!(at, DataType::Timestamp(arrow_schema::TimeUnit::Millisecond, Some("UTC".into())));
        let times = arrow.column(1).as_primitive::<arrow_array::types::TimestampMillisecondType>();
        assert_eq!((times.value(0), times.is_null(1), times.value(2)), (1_500, true, 2_000));

        // Into a table's text column, a timestamp is its RFC 3339 text.
        let (columns, _) = batch.into_parts();
        let mut columns = columns.into_iter();
        let ids = columns.next().unwrap().into_arrow_as(3, &DataType::Int64).unwrap();
        assert_eq!(ids.as_primitive::<Int64Type>().values().as_ref(), [7, 8, 9]);
        let text = columns.next().unwrap().into_arrow_as(3, &DataType::Utf8).unwrap();
        let text = text.as_string::<i32>();
        assert_eq!((text.value(0), text.is_null(1)), ("1970-01-01T00:00:01.500Z", true));
    }
}
