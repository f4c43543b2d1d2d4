//! Arrow arrays, as the parquet crate decodes them, to the columns of a batch.

use arrow_array::cast::AsArray;
use arrow_array::types::*;
use arrow_array::{Array, ArrowPrimitiveType, BooleanArray, StringArray};
use arrow_schema::{DataType, TimeUnit};
use base64::Engine;
use serde_json::{Map, Value as Json};
use sluice_plugin_sdk::as_text::{self, Decimals};
use sluice_plugin_sdk::{ColumnValues, TypedColumn, Validity, Value, json_float};
use std::fmt::Write;

/// The values of `array` as column `name`: integers, floats, booleans, text and timestamps as the typed
/// buffers Arrow decoded them into (contract 1.3.0), dates and decimals as text, and everything else
/// value by value (nested values as JSON).
pub fn typed_column(name: &str, array: &dyn Array, decimals: Decimals) -> Result<TypedColumn, String> {
    let valid = || match array.nulls() {
        Some(nulls) if nulls.null_count() > 0 => {
            Validity::from_bitmap(nulls.inner().sliced().as_slice().to_vec())
        }
        _ => Validity::all(),
    };
    Ok(match array.data_type() {
        DataType::Boolean => TypedColumn::booleans(name, unpacked(array.as_boolean()), valid()),
        DataType::Int8 => TypedColumn::integers(name, integers::<Int8Type>(array), valid()),
        DataType::Int16 => TypedColumn::integers(name, integers::<Int16Type>(array), valid()),
        DataType::Int32 => TypedColumn::integers(name, integers::<Int32Type>(array), valid()),
        DataType::Int64 => {
            TypedColumn::integers(name, array.as_primitive::<Int64Type>().values().to_vec(), valid())
        }
        DataType::UInt8 => TypedColumn::integers(name, integers::<UInt8Type>(array), valid()),
        DataType::UInt16 => TypedColumn::integers(name, integers::<UInt16Type>(array), valid()),
        DataType::UInt32 => TypedColumn::integers(name, integers::<UInt32Type>(array), valid()),
        DataType::UInt64
            if array.as_primitive::<UInt64Type>().iter().flatten().all(|v| i64::try_from(v).is_ok()) =>
        {
            let values = array.as_primitive::<UInt64Type>().values().iter().map(|&v| v as i64).collect();
            TypedColumn::integers(name, values, valid())
        }
        DataType::Float16 => {
            let values = array.as_primitive::<Float16Type>().values().iter().map(|&v| f64::from(v)).collect();
            TypedColumn::floats(name, values, valid())
        }
        DataType::Float32 => {
            let values = array.as_primitive::<Float32Type>().values().iter().map(|&v| f64::from(v)).collect();
            TypedColumn::floats(name, values, valid())
        }
        DataType::Float64 => {
            TypedColumn::floats(name, array.as_primitive::<Float64Type>().values().to_vec(), valid())
        }
        DataType::Utf8 => {
            let (ends, data) = text_buffers(array.as_string::<i32>());
            TypedColumn::text(name, ends, data, valid())
        }
        DataType::Dictionary(key, value) if **key == DataType::Int32 && **value == DataType::Utf8 => {
            let dictionary = array.as_dictionary::<Int32Type>();
            // Keys are never negative: the reader checked each against the dictionary.
            let keys = dictionary.keys().values().iter().map(|&key| key as u32).collect();
            let (ends, data) = text_buffers(dictionary.values().as_string::<i32>());
            TypedColumn::dictionary(name, keys, ends, data, valid())
        }
        DataType::LargeUtf8 => text(name, array.len(), valid(), |row, out| {
            out.push_str(array.as_string::<i64>().value(row));
        }),
        DataType::Utf8View => text(name, array.len(), valid(), |row, out| {
            out.push_str(array.as_string_view().value(row));
        }),
        DataType::Timestamp(unit, zone) => {
            let values = match unit {
                TimeUnit::Second => array.as_primitive::<TimestampSecondType>().values().to_vec(),
                TimeUnit::Millisecond => array.as_primitive::<TimestampMillisecondType>().values().to_vec(),
                TimeUnit::Microsecond => array.as_primitive::<TimestampMicrosecondType>().values().to_vec(),
                TimeUnit::Nanosecond => array.as_primitive::<TimestampNanosecondType>().values().to_vec(),
            };
            TypedColumn::timestamps(name, text_unit(*unit), zone.is_some(), values, valid())
        }
        DataType::Date32 => {
            let days = array.as_primitive::<Date32Type>();
            text(name, array.len(), valid(), |row, out| {
                as_text::write_date(out, i64::from(days.value(row))).expect("a String takes any text");
            })
        }
        DataType::Decimal128(_, scale) if decimals == Decimals::Text => {
            let unscaled = array.as_primitive::<Decimal128Type>();
            text(name, array.len(), valid(), |row, out| {
                out.push_str(&as_text::decimal(unscaled.value(row), *scale))
            })
        }
        _ => {
            // Everything else goes through one value at a time: text for scalars, JSON for nested values.
            let mut column = ColumnValues::new(name, array.len());
            let mut text = String::new();
            for row in 0..array.len() {
                match scalar_or_json(array, row, decimals)? {
                    Json::Null => column.push(Value::Null),
                    Json::Bool(b) => column.push(Value::Boolean(b)),
                    Json::Number(n) => match (n.as_i64(), n.as_f64()) {
                        (Some(i), _) => column.push(Value::Integer(i)),
                        (None, Some(f)) if n.is_f64() => column.push(Value::Float(f)),
                        _ => {
                            text.clear();
                            write!(text, "{n}").unwrap();
                            column.push(Value::Json(&text));
                        }
                    },
                    Json::String(s) => column.push(Value::Text(&s)),
                    nested => {
                        text.clear();
                        write!(text, "{nested}").unwrap();
                        column.push(Value::Json(&text));
                    }
                }
            }
            TypedColumn::mixed(column)
        }
    })
}

/// Arrow's packed booleans as one `bool` per row: a byte at a time where they start on a byte, as a row
/// group's do (a bit at a time, Arrow's own iterator costs several times as much inside the sandbox).
fn unpacked(array: &BooleanArray) -> Vec<bool> {
    let bits = array.values();
    if !bits.offset().is_multiple_of(8) {
        return bits.iter().collect();
    }
    let bytes = &bits.values()[bits.offset() / 8..][..bits.len().div_ceil(8)];
    let mut values = Vec::with_capacity(bytes.len() * 8);
    for byte in bytes {
        values.extend((0..8).map(|bit| byte >> bit & 1 == 1));
    }
    values.truncate(bits.len());
    values
}

/// Arrow's text as the contract's: an end offset per value into the values' bytes.
fn text_buffers(strings: &StringArray) -> (Vec<u32>, Vec<u8>) {
    let offsets = strings.value_offsets();
    let (first, last) = (offsets[0] as usize, offsets[offsets.len() - 1] as usize);
    let ends = offsets[1..].iter().map(|&end| (end as usize - first) as u32).collect();
    (ends, strings.value_data()[first..last].to_vec())
}

/// A text column of `rows` rows, each valid row's text written by `write`.
fn text(name: &str, rows: usize, valid: Validity, mut write: impl FnMut(usize, &mut String)) -> TypedColumn {
    let (mut ends, mut data) = (Vec::with_capacity(rows), String::new());
    for row in 0..rows {
        if valid.is_valid(row) {
            write(row, &mut data);
        }
        ends.push(data.len() as u32);
    }
    TypedColumn::text(name, ends, data.into_bytes(), valid)
}

/// Every value as an `i64`, nulls as whatever their slot holds.
fn integers<T: ArrowPrimitiveType>(array: &dyn Array) -> Vec<i64>
where
    T::Native: Into<i64>,
{
    array.as_primitive::<T>().values().iter().map(|&v| v.into()).collect()
}

/// Value `row` of `array` as JSON: the scalars the fast paths above do not take, and nested values.
fn scalar_or_json(array: &dyn Array, row: usize, decimals: Decimals) -> Result<Json, String> {
    if array.is_null(row) {
        return Ok(Json::Null);
    }
    let json = match array.data_type() {
        DataType::Null => Json::Null,
        DataType::Boolean => Json::Bool(array.as_boolean().value(row)),
        DataType::Int8 => array.as_primitive::<Int8Type>().value(row).into(),
        DataType::Int16 => array.as_primitive::<Int16Type>().value(row).into(),
        DataType::Int32 => array.as_primitive::<Int32Type>().value(row).into(),
        DataType::Int64 => array.as_primitive::<Int64Type>().value(row).into(),
        DataType::UInt8 => array.as_primitive::<UInt8Type>().value(row).into(),
        DataType::UInt16 => array.as_primitive::<UInt16Type>().value(row).into(),
        DataType::UInt32 => array.as_primitive::<UInt32Type>().value(row).into(),
        DataType::UInt64 => array.as_primitive::<UInt64Type>().value(row).into(),
        DataType::Float16 => json_float(f64::from(array.as_primitive::<Float16Type>().value(row))),
        DataType::Float32 => json_float(f64::from(array.as_primitive::<Float32Type>().value(row))),
        DataType::Float64 => json_float(array.as_primitive::<Float64Type>().value(row)),
        DataType::Utf8 => array.as_string::<i32>().value(row).into(),
        DataType::LargeUtf8 => array.as_string::<i64>().value(row).into(),
        DataType::Utf8View => array.as_string_view().value(row).into(),
        DataType::Binary => base64(array.as_binary::<i32>().value(row)),
        DataType::LargeBinary => base64(array.as_binary::<i64>().value(row)),
        DataType::BinaryView => base64(array.as_binary_view().value(row)),
        DataType::FixedSizeBinary(_) => base64(array.as_fixed_size_binary().value(row)),
        DataType::Date32 => date(i64::from(array.as_primitive::<Date32Type>().value(row)))?,
        DataType::Date64 => date(array.as_primitive::<Date64Type>().value(row).div_euclid(86_400_000))?,
        DataType::Time32(TimeUnit::Second) => {
            time(i64::from(array.as_primitive::<Time32SecondType>().value(row)), TimeUnit::Second)?
        }
        DataType::Time32(_) => {
            time(i64::from(array.as_primitive::<Time32MillisecondType>().value(row)), TimeUnit::Millisecond)?
        }
        DataType::Time64(TimeUnit::Microsecond) => {
            time(array.as_primitive::<Time64MicrosecondType>().value(row), TimeUnit::Microsecond)?
        }
        DataType::Time64(_) => {
            time(array.as_primitive::<Time64NanosecondType>().value(row), TimeUnit::Nanosecond)?
        }
        DataType::Timestamp(unit, zone) => {
            let value = match unit {
                TimeUnit::Second => array.as_primitive::<TimestampSecondType>().value(row),
                TimeUnit::Millisecond => array.as_primitive::<TimestampMillisecondType>().value(row),
                TimeUnit::Microsecond => array.as_primitive::<TimestampMicrosecondType>().value(row),
                TimeUnit::Nanosecond => array.as_primitive::<TimestampNanosecondType>().value(row),
            };
            timestamp(value, *unit, zone.is_some())
        }
        DataType::Duration(_) => {
            // A count of its unit, as the file holds it (the unit is the column's type).
            let values = array.to_data();
            let buffer = values.buffers()[0].typed_data::<i64>();
            buffer[values.offset() + row].into()
        }
        DataType::Decimal32(_, scale) => {
            decimal(i128::from(array.as_primitive::<Decimal32Type>().value(row)), *scale, decimals)
        }
        DataType::Decimal64(_, scale) => {
            decimal(i128::from(array.as_primitive::<Decimal64Type>().value(row)), *scale, decimals)
        }
        DataType::Decimal128(_, scale) => {
            decimal(array.as_primitive::<Decimal128Type>().value(row), *scale, decimals)
        }
        DataType::Decimal256(_, scale) => {
            let value = array.as_primitive::<Decimal256Type>().value(row);
            match value.to_i128() {
                Some(value) => decimal(value, *scale, decimals),
                None => return Err(format!("a decimal too large to read ({value})")),
            }
        }
        DataType::List(_) => list(array.as_list::<i32>().value(row).as_ref(), decimals)?,
        DataType::LargeList(_) => list(array.as_list::<i64>().value(row).as_ref(), decimals)?,
        DataType::FixedSizeList(..) => list(array.as_fixed_size_list().value(row).as_ref(), decimals)?,
        DataType::Struct(fields) => {
            let record = array.as_struct();
            let mut object = Map::with_capacity(fields.len());
            for (field, child) in fields.iter().zip(record.columns()) {
                object.insert(field.name().clone(), scalar_or_json(child.as_ref(), row, decimals)?);
            }
            Json::Object(object)
        }
        DataType::Map(..) => {
            let map = array.as_map();
            let entries = map.value(row);
            let (keys, values) = (entries.column(0), entries.column(1));
            let mut object = Map::with_capacity(entries.len());
            for entry in 0..entries.len() {
                let key = match scalar_or_json(keys.as_ref(), entry, decimals)? {
                    Json::String(key) => key,
                    other => other.to_string(),
                };
                object.insert(key, scalar_or_json(values.as_ref(), entry, decimals)?);
            }
            Json::Object(object)
        }
        other => return Err(format!("values of type {other} cannot be read")),
    };
    Ok(json)
}

fn list(values: &dyn Array, decimals: Decimals) -> Result<Json, String> {
    (0..values.len())
        .map(|i| scalar_or_json(values, i, decimals))
        .collect::<Result<Vec<_>, _>>()
        .map(Json::Array)
}

/// A float; JSON has no NaN or infinities, which become text.
fn base64(bytes: &[u8]) -> Json {
    Json::String(base64::engine::general_purpose::STANDARD.encode(bytes))
}

fn date(days: i64) -> Result<Json, String> {
    Ok(Json::String(as_text::date(days)))
}

fn time(value: i64, unit: TimeUnit) -> Result<Json, String> {
    as_text::time_of_day(value, text_unit(unit)).map(Json::String)
}

fn timestamp(value: i64, unit: TimeUnit, utc: bool) -> Json {
    Json::String(as_text::timestamp(value, text_unit(unit), utc))
}

fn text_unit(unit: TimeUnit) -> as_text::TimeUnit {
    match unit {
        TimeUnit::Second => as_text::TimeUnit::Second,
        TimeUnit::Millisecond => as_text::TimeUnit::Millisecond,
        TimeUnit::Microsecond => as_text::TimeUnit::Microsecond,
        TimeUnit::Nanosecond => as_text::TimeUnit::Nanosecond,
    }
}

fn decimal(unscaled: i128, scale: i8, decimals: Decimals) -> Json {
    decimals.json(as_text::decimal(unscaled, scale))
}
