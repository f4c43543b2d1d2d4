//! Arrow arrays, as the parquet crate decodes them, to the values of a batch.

use arrow_array::cast::AsArray;
use arrow_array::types::*;
use arrow_array::{Array, ArrowPrimitiveType, PrimitiveArray};
use arrow_schema::{DataType, TimeUnit};
use base64::Engine;
use serde_json::{Map, Value as Json};
use sluice_plugin_sdk::as_text::{self, Decimals};
use sluice_plugin_sdk::{ColumnValues, Value, json_float};
use std::fmt::Write;

/// Appends each value of `array` to `column`.
pub fn write_column(array: &dyn Array, decimals: Decimals, column: &mut ColumnValues) -> Result<(), String> {
    let mut text = String::new();
    match array.data_type() {
        DataType::Null => (0..array.len()).for_each(|_| column.push(Value::Null)),
        DataType::Boolean => {
            let values = array.as_boolean();
            for row in 0..array.len() {
                column.push(if values.is_null(row) {
                    Value::Null
                } else {
                    Value::Boolean(values.value(row))
                });
            }
        }
        DataType::Int8 => integers::<Int8Type>(array, column),
        DataType::Int16 => integers::<Int16Type>(array, column),
        DataType::Int32 => integers::<Int32Type>(array, column),
        DataType::Int64 => integers::<Int64Type>(array, column),
        DataType::UInt8 => integers::<UInt8Type>(array, column),
        DataType::UInt16 => integers::<UInt16Type>(array, column),
        DataType::UInt32 => integers::<UInt32Type>(array, column),
        DataType::UInt64 => {
            for (row, value) in array.as_primitive::<UInt64Type>().iter().enumerate() {
                match value.map(i64::try_from) {
                    None => column.push(Value::Null),
                    Some(Ok(value)) => column.push(Value::Integer(value)),
                    Some(Err(_)) => {
                        text.clear();
                        write!(text, "{}", array.as_primitive::<UInt64Type>().value(row)).unwrap();
                        column.push(Value::Json(&text));
                    }
                }
            }
        }
        DataType::Float16 => {
            for value in array.as_primitive::<Float16Type>().iter() {
                column.push(value.map_or(Value::Null, |v| Value::Float(f64::from(v))));
            }
        }
        DataType::Float32 => {
            for value in array.as_primitive::<Float32Type>().iter() {
                column.push(value.map_or(Value::Null, |v| Value::Float(f64::from(v))));
            }
        }
        DataType::Float64 => {
            for value in array.as_primitive::<Float64Type>().iter() {
                column.push(value.map_or(Value::Null, Value::Float));
            }
        }
        DataType::Utf8 => {
            array.as_string::<i32>().iter().for_each(|v| column.push(v.map_or(Value::Null, Value::Text)))
        }
        DataType::LargeUtf8 => {
            array.as_string::<i64>().iter().for_each(|v| column.push(v.map_or(Value::Null, Value::Text)))
        }
        DataType::Utf8View => {
            array.as_string_view().iter().for_each(|v| column.push(v.map_or(Value::Null, Value::Text)))
        }
        DataType::Timestamp(unit, zone) => {
            let (unit, utc) = (*unit, zone.is_some());
            let values: Vec<Option<i64>> = match unit {
                TimeUnit::Second => array.as_primitive::<TimestampSecondType>().iter().collect(),
                TimeUnit::Millisecond => array.as_primitive::<TimestampMillisecondType>().iter().collect(),
                TimeUnit::Microsecond => array.as_primitive::<TimestampMicrosecondType>().iter().collect(),
                TimeUnit::Nanosecond => array.as_primitive::<TimestampNanosecondType>().iter().collect(),
            };
            // Timestamps of a file mostly fall on few days: a day's date is written once, then copied.
            let mut day: Option<(i64, String)> = None;
            for value in values {
                match value {
                    None => column.push(Value::Null),
                    Some(value) => {
                        let (seconds, nanos) = text_unit(unit).split(value);
                        let days = seconds.div_euclid(86_400);
                        let date = match &mut day {
                            Some((cached, date)) if *cached == days => date,
                            _ => {
                                let mut date = String::with_capacity(10);
                                as_text::write_date(&mut date, days);
                                &mut day.insert((days, date)).1
                            }
                        };
                        text.clear();
                        text.push_str(date);
                        as_text::write_clock(
                            &mut text,
                            seconds.rem_euclid(86_400) as u64,
                            nanos,
                            text_unit(unit),
                        );
                        if utc {
                            text.push('Z');
                        }
                        column.push(Value::Text(&text));
                    }
                }
            }
        }
        DataType::Date32 => {
            for value in array.as_primitive::<Date32Type>().iter() {
                match value {
                    None => column.push(Value::Null),
                    Some(days) => {
                        text.clear();
                        as_text::write_date(&mut text, i64::from(days));
                        column.push(Value::Text(&text));
                    }
                }
            }
        }
        DataType::Decimal128(_, scale) if decimals == Decimals::Text => {
            for value in array.as_primitive::<Decimal128Type>().iter() {
                match value {
                    None => column.push(Value::Null),
                    Some(unscaled) => column.push(Value::Text(&as_text::decimal(unscaled, *scale))),
                }
            }
        }
        _ => {
            // Everything else goes through one value at a time: text for scalars, JSON for nested values.
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
        }
    }
    Ok(())
}

fn integers<T: ArrowPrimitiveType>(array: &dyn Array, column: &mut ColumnValues)
where
    T::Native: Into<i64>,
{
    let values: &PrimitiveArray<T> = array.as_primitive::<T>();
    for value in values.iter() {
        column.push(value.map_or(Value::Null, |v| Value::Integer(v.into())));
    }
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
