//! Arrow arrays, as the parquet crate decodes them, to the values of a batch.

use arrow_array::cast::AsArray;
use arrow_array::types::*;
use arrow_array::{Array, ArrowPrimitiveType, PrimitiveArray};
use arrow_schema::{DataType, TimeUnit};
use base64::Engine;
use serde_json::{Map, Number, Value as Json};
use sluice_plugin_sdk::{ColumnValues, Value};
use std::fmt::Write;

/// How decimals are handed on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decimals {
    /// As exact text (`"12.30"`).
    Text,
    /// As the nearest float.
    Float,
}

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
                        let (seconds, nanos) = split(value, unit);
                        let days = seconds.div_euclid(86_400);
                        let date = match &mut day {
                            Some((cached, date)) if *cached == days => date,
                            _ => {
                                let mut date = String::with_capacity(10);
                                write_date(&mut date, days);
                                &mut day.insert((days, date)).1
                            }
                        };
                        text.clear();
                        text.push_str(date);
                        write_time(&mut text, seconds.rem_euclid(86_400) as u64, nanos, unit);
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
                        write_date(&mut text, i64::from(days));
                        column.push(Value::Text(&text));
                    }
                }
            }
        }
        DataType::Decimal128(_, scale) if decimals == Decimals::Text => {
            for value in array.as_primitive::<Decimal128Type>().iter() {
                match value {
                    None => column.push(Value::Null),
                    Some(unscaled) => column.push(Value::Text(&decimal_text(unscaled, *scale))),
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
        DataType::Float16 => float(f64::from(array.as_primitive::<Float16Type>().value(row))),
        DataType::Float32 => float(f64::from(array.as_primitive::<Float32Type>().value(row))),
        DataType::Float64 => float(array.as_primitive::<Float64Type>().value(row)),
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
fn float(value: f64) -> Json {
    Number::from_f64(value).map_or_else(|| Json::String(value.to_string()), Json::Number)
}

fn base64(bytes: &[u8]) -> Json {
    Json::String(base64::engine::general_purpose::STANDARD.encode(bytes))
}

fn date(days: i64) -> Result<Json, String> {
    let mut text = String::new();
    write_date(&mut text, days);
    Ok(Json::String(text))
}

/// The proleptic Gregorian date `days` after 1970-01-01, as year, month and day (Howard Hinnant's
/// `civil_from_days`, exact for every `i64` count a timestamp can hold).
fn civil(days: i64) -> (i64, u32, u32) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 { month_index + 3 } else { month_index - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `2026-11-05`: the date `days` after 1970-01-01. Digits are written by hand: `write!` with widths
/// costs several times as much, and a file may hold millions of timestamps.
fn write_date(out: &mut String, days: i64) {
    let (year, month, day) = civil(days);
    if (0..=9999).contains(&year) {
        let mut text = *b"0000-00-00";
        digits(&mut text[0..4], year as u64);
        digits(&mut text[5..7], u64::from(month));
        digits(&mut text[8..10], u64::from(day));
        out.push_str(std::str::from_utf8(&text).expect("ASCII digits"));
    } else {
        write!(out, "{year:04}-{month:02}-{day:02}").unwrap();
    }
}

/// Writes `value`'s last `into.len()` decimal digits into `into`, zero-padded.
fn digits(into: &mut [u8], mut value: u64) {
    for place in into.iter_mut().rev() {
        *place = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// RFC 3339 for an instant (`Z`); the same without an offset for a local time, which names no instant;
/// with the digits of its unit.
fn write_timestamp(out: &mut String, value: i64, unit: TimeUnit, utc: bool) {
    let (seconds, nanos) = split(value, unit);
    write_date(out, seconds.div_euclid(86_400));
    write_time(out, seconds.rem_euclid(86_400) as u64, nanos, unit);
    if utc {
        out.push('Z');
    }
}

/// `T13:45:00.250`: the time of day of a timestamp, with the digits of its unit.
fn write_time(out: &mut String, second_of_day: u64, nanos: u32, unit: TimeUnit) {
    let mut clock = *b"T00:00:00";
    digits(&mut clock[1..3], second_of_day / 3600);
    digits(&mut clock[4..6], second_of_day / 60 % 60);
    digits(&mut clock[7..9], second_of_day % 60);
    out.push_str(std::str::from_utf8(&clock).expect("ASCII digits"));
    write_fraction(out, nanos, unit);
}

/// The fraction of a second, with the digits of its unit (none for whole seconds).
fn write_fraction(out: &mut String, nanos: u32, unit: TimeUnit) {
    let (value, width) = match unit {
        TimeUnit::Second => return,
        TimeUnit::Millisecond => (nanos / 1_000_000, 3),
        TimeUnit::Microsecond => (nanos / 1_000, 6),
        TimeUnit::Nanosecond => (nanos, 9),
    };
    let mut fraction = *b".000000000";
    digits(&mut fraction[1..=width], u64::from(value));
    out.push_str(std::str::from_utf8(&fraction[..=width]).expect("ASCII digits"));
}

/// Seconds and nanoseconds of `value` in `unit`.
fn split(value: i64, unit: TimeUnit) -> (i64, u32) {
    let per_second = match unit {
        TimeUnit::Second => 1,
        TimeUnit::Millisecond => 1_000,
        TimeUnit::Microsecond => 1_000_000,
        TimeUnit::Nanosecond => 1_000_000_000,
    };
    let nanos = value.rem_euclid(per_second) * (1_000_000_000 / per_second);
    (value.div_euclid(per_second), nanos as u32)
}

fn time(value: i64, unit: TimeUnit) -> Result<Json, String> {
    let (seconds, nanos) = split(value, unit);
    if !(0..86_400).contains(&seconds) {
        return Err(format!("a time of day out of range ({value})"));
    }
    let mut text = format!("{:02}:{:02}:{:02}", seconds / 3600, seconds / 60 % 60, seconds % 60);
    write_fraction(&mut text, nanos, unit);
    Ok(Json::String(text))
}

fn timestamp(value: i64, unit: TimeUnit, utc: bool) -> Json {
    let mut text = String::new();
    write_timestamp(&mut text, value, unit, utc);
    Json::String(text)
}

fn decimal(unscaled: i128, scale: i8, decimals: Decimals) -> Json {
    let text = decimal_text(unscaled, scale);
    match decimals {
        Decimals::Text => Json::String(text),
        Decimals::Float => float(text.parse().unwrap_or(f64::NAN)),
    }
}

/// The exact digits of `unscaled × 10^-scale`.
fn decimal_text(unscaled: i128, scale: i8) -> String {
    if scale <= 0 {
        let zeros = "0".repeat(scale.unsigned_abs() as usize);
        return if unscaled == 0 { "0".into() } else { format!("{unscaled}{zeros}") };
    }
    let scale = scale as usize;
    let digits = unscaled.unsigned_abs().to_string();
    let digits = format!("{digits:0>width$}", width = scale + 1);
    let (whole, fraction) = digits.split_at(digits.len() - scale);
    let sign = if unscaled < 0 { "-" } else { "" };
    format!("{sign}{whole}.{fraction}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_keep_every_digit() {
        assert_eq!(decimal_text(1230, 2), "12.30");
        assert_eq!(decimal_text(-5, 3), "-0.005");
        assert_eq!(decimal_text(0, 2), "0.00");
        assert_eq!(decimal_text(7, -2), "700");
        assert_eq!(decimal_text(i128::MAX, 38), "1.70141183460469231731687303715884105727");
    }

    #[test]
    fn times_carry_the_digits_of_their_unit() {
        assert_eq!(timestamp(1_500, TimeUnit::Millisecond, true), "1970-01-01T00:00:01.500Z");
        assert_eq!(timestamp(-1, TimeUnit::Second, false), "1969-12-31T23:59:59");
        assert_eq!(timestamp(951_827_696_789, TimeUnit::Millisecond, true), "2000-02-29T12:34:56.789Z");
        assert_eq!(timestamp(-62_135_596_800, TimeUnit::Second, true), "0001-01-01T00:00:00Z");
        assert_eq!(time(3_600_000_001, TimeUnit::Microsecond).unwrap(), "01:00:00.000001");
        assert_eq!(date(-1).unwrap(), "1969-12-31");
    }
}
