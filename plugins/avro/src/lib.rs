//! Avro object container files, streamed with apache-avro: the schema comes from the file's header, each
//! record is a row, its fields the columns. A record's "line" is its 1-based number in the file.
//!
//! Values, by the writer's schema:
//! - null, boolean, int and long, float and double, string as themselves; an enum as its symbol; a union
//!   as the branch it holds;
//! - bytes and fixed as base64;
//! - `date`, `time-*`, `timestamp-*` (an instant, with `Z`) and `local-timestamp-*` (without) as text in
//!   RFC 3339's forms, with the digits of their unit; `uuid` as text;
//! - `decimal` as exact text, or the nearest float with `decimals = "float"`;
//! - arrays, maps, nested records and `duration` as JSON.
//!
//! The plugin reads the file front to back by ranges (contract 1.2.0), one block at a time, so memory holds
//! a block and a batch whatever the file's size. Codecs: null, deflate, snappy and zstandard.

use apache_avro::schema::{Name, ResolvedSchema, Schema};
use apache_avro::types::Value as Avro;
use base64::Engine;
use serde_json::{Map, Value as Json};
use sluice_plugin_sdk::as_text::{self, Decimals};
use sluice_plugin_sdk::{
    ColumnValues, Emitter, FatalError, Options, RangeInput, RangeReader, RangedParser, Value,
    export_ranged_parser, fatal, json_float,
};
use std::collections::HashMap;
use std::io::BufReader;

/// Records handed on per call.
const RECORDS_PER_CALL: usize = 8192;
/// Bytes asked of the host per read.
const READ: usize = 1 << 20;

struct AvroFile {
    records: apache_avro::Reader<'static, BufReader<RangeReader>>,
    types: Types,
    /// Records read so far.
    read: u64,
}

/// The writer's schema, with its named types to resolve references by.
struct Types {
    schema: Schema,
    named: HashMap<Name, Schema>,
    decimals: Decimals,
}

impl RangedParser for AvroFile {
    fn create(mut options: Options, input: RangeInput) -> Result<Self, FatalError> {
        let decimals = Decimals::from_options(&mut options)?;
        options.finish()?;
        let records = apache_avro::Reader::new(BufReader::with_capacity(READ, input.reader()))
            .map_err(|e| fatal(0, format!("not an Avro object container file: {e}")))?;
        let schema = records.writer_schema().clone();
        let resolved = ResolvedSchema::try_from(&schema)
            .map_err(|e| fatal(0, format!("the file's schema does not resolve: {e}")))?;
        let named =
            resolved.get_names().iter().map(|(name, schema)| (name.clone(), (*schema).clone())).collect();
        Ok(AvroFile { records, types: Types { schema, named, decimals }, read: 0 })
    }

    fn next(&mut self, out: &mut Emitter) -> Result<bool, FatalError> {
        let schema = self.types.schema.clone();
        let fields = match self.types.resolve(&schema) {
            Schema::Record(record) => {
                record.fields.iter().map(|field| (field.name.clone(), field.schema.clone())).collect()
            }
            // A file of plain values (`"long"`, say): each is a row of one column.
            other => vec![("value".to_string(), other.clone())],
        };
        let mut columns: Vec<ColumnValues> =
            fields.iter().map(|(name, _)| ColumnValues::new(name, RECORDS_PER_CALL)).collect();
        let mut lines = Vec::with_capacity(RECORDS_PER_CALL);
        let mut text = String::new();
        let mut more = true;
        while lines.len() < RECORDS_PER_CALL {
            let number = self.read + 1;
            let record = match self.records.next() {
                None => {
                    more = false;
                    break;
                }
                Some(Err(e)) => {
                    out.emit_columns(columns, lines);
                    return Err(fatal(number, format!("record {number} cannot be read: {e}")));
                }
                Some(Ok(record)) => record,
            };
            let values = match record {
                Avro::Record(values) if values.len() == fields.len() => values,
                Avro::Record(_) => {
                    out.emit_columns(columns, lines);
                    return Err(fatal(number, "a record does not have its schema's fields"));
                }
                plain => vec![(String::new(), plain)],
            };
            for ((column, (_, value)), (name, schema)) in columns.iter_mut().zip(values).zip(&fields) {
                if let Err(error) = self.types.push(column, &value, schema, &mut text) {
                    // The row's earlier columns already hold a value: hand on only the whole rows before it.
                    out.emit_columns(cut(columns, lines.len()), lines);
                    return Err(fatal(number, format!("field `{name}` of record {number}: {error}")));
                }
            }
            self.read = number;
            lines.push(number);
        }
        out.emit_columns(columns, lines);
        Ok(more)
    }
}

/// The columns cut back to their first `rows` values: a record that failed part-way is not handed on.
fn cut(columns: Vec<ColumnValues>, rows: usize) -> Vec<ColumnValues> {
    columns.into_iter().map(|column| column.truncated(rows)).collect()
}

impl Types {
    /// `schema`, or the named type it refers to.
    fn resolve<'s>(&'s self, schema: &'s Schema) -> &'s Schema {
        match schema {
            Schema::Ref { name } => self.named.get(name).unwrap_or(schema),
            other => other,
        }
    }

    /// Appends `value` (of `schema`) to `column`: scalars as themselves or text, the rest as JSON.
    fn push(
        &self,
        column: &mut ColumnValues,
        value: &Avro,
        schema: &Schema,
        text: &mut String,
    ) -> Result<(), String> {
        let schema = self.resolve(schema);
        match value {
            Avro::Null => column.push(Value::Null),
            Avro::Boolean(b) => column.push(Value::Boolean(*b)),
            Avro::Int(i) => column.push(Value::Integer(i64::from(*i))),
            Avro::Long(i) => column.push(Value::Integer(*i)),
            Avro::Float(f) => column.push(Value::Float(f64::from(*f))),
            Avro::Double(f) => column.push(Value::Float(*f)),
            Avro::String(s) | Avro::Enum(_, s) => column.push(Value::Text(s)),
            Avro::Union(branch, inner) => {
                let Schema::Union(union) = schema else {
                    return Err("a union value where the schema has no union".into());
                };
                let branch =
                    union.variants().get(*branch as usize).ok_or("a union branch the schema lacks")?;
                return self.push(column, inner, branch, text);
            }
            Avro::TimestampMillis(_) | Avro::TimestampMicros(_) | Avro::TimestampNanos(_) => {
                text.clear();
                let (value, unit) = instant(value).expect("a timestamp");
                as_text::write_timestamp(text, value, unit, true).expect("a String takes any text");
                column.push(Value::Text(text));
            }
            other => match self.json(other, schema)? {
                Json::Null => column.push(Value::Null),
                Json::String(s) => column.push(Value::Text(&s)),
                Json::Number(n) if n.is_f64() => column.push(Value::Float(n.as_f64().unwrap_or(f64::NAN))),
                nested => {
                    text.clear();
                    text.push_str(&nested.to_string());
                    column.push(Value::Json(text));
                }
            },
        }
        Ok(())
    }

    /// `value` (of `schema`) as JSON.
    fn json(&self, value: &Avro, schema: &Schema) -> Result<Json, String> {
        let schema = self.resolve(schema);
        Ok(match value {
            Avro::Null => Json::Null,
            Avro::Boolean(b) => Json::Bool(*b),
            Avro::Int(i) => Json::from(*i),
            Avro::Long(i) => Json::from(*i),
            Avro::Float(f) => json_float(f64::from(*f)),
            Avro::Double(f) => json_float(*f),
            Avro::String(s) | Avro::Enum(_, s) => Json::String(s.clone()),
            Avro::Bytes(bytes) | Avro::Fixed(_, bytes) => {
                Json::String(base64::engine::general_purpose::STANDARD.encode(bytes))
            }
            Avro::Uuid(uuid) => Json::String(uuid.to_string()),
            Avro::Date(days) => Json::String(as_text::date(i64::from(*days))),
            Avro::TimeMillis(millis) => {
                Json::String(as_text::time_of_day(i64::from(*millis), as_text::TimeUnit::Millisecond)?)
            }
            Avro::TimeMicros(micros) => {
                Json::String(as_text::time_of_day(*micros, as_text::TimeUnit::Microsecond)?)
            }
            Avro::TimestampMillis(_) | Avro::TimestampMicros(_) | Avro::TimestampNanos(_) => {
                let (value, unit) = instant(value).expect("a timestamp");
                Json::String(as_text::timestamp(value, unit, true))
            }
            Avro::LocalTimestampMillis(v) => {
                Json::String(as_text::timestamp(*v, as_text::TimeUnit::Millisecond, false))
            }
            Avro::LocalTimestampMicros(v) => {
                Json::String(as_text::timestamp(*v, as_text::TimeUnit::Microsecond, false))
            }
            Avro::LocalTimestampNanos(v) => {
                Json::String(as_text::timestamp(*v, as_text::TimeUnit::Nanosecond, false))
            }
            Avro::Decimal(decimal) => {
                let Schema::Decimal(decimal_schema) = schema else {
                    return Err("a decimal value where the schema has no decimal".into());
                };
                let bytes = Vec::<u8>::try_from(decimal).map_err(|e| format!("a bad decimal: {e}"))?;
                self.decimals.json(decimal_text(&bytes, decimal_schema.scale))
            }
            Avro::BigDecimal(decimal) => Json::String(decimal.to_string()),
            Avro::Duration(duration) => serde_json::json!({
                "months": u32::from(duration.months()),
                "days": u32::from(duration.days()),
                "millis": u32::from(duration.millis()),
            }),
            Avro::Union(branch, inner) => {
                let Schema::Union(union) = schema else {
                    return Err("a union value where the schema has no union".into());
                };
                let branch =
                    union.variants().get(*branch as usize).ok_or("a union branch the schema lacks")?;
                self.json(inner, branch)?
            }
            Avro::Array(items) => {
                let Schema::Array(array) = schema else {
                    return Err("an array where the schema has none".into());
                };
                Json::Array(items.iter().map(|item| self.json(item, &array.items)).collect::<Result<_, _>>()?)
            }
            Avro::Map(entries) => {
                let Schema::Map(map) = schema else { return Err("a map where the schema has none".into()) };
                // Avro maps are unordered; sorted keys make equal maps equal text.
                let mut keys: Vec<&String> = entries.keys().collect();
                keys.sort();
                let mut object = Map::new();
                for key in keys {
                    object.insert(key.clone(), self.json(&entries[key], &map.types)?);
                }
                Json::Object(object)
            }
            Avro::Record(fields) => {
                let Schema::Record(record) = schema else {
                    return Err("a record where the schema has none".into());
                };
                let mut object = Map::new();
                for ((name, value), field) in fields.iter().zip(&record.fields) {
                    object.insert(name.clone(), self.json(value, &field.schema)?);
                }
                Json::Object(object)
            }
        })
    }
}

/// A timestamp's count and unit.
fn instant(value: &Avro) -> Option<(i64, as_text::TimeUnit)> {
    match value {
        Avro::TimestampMillis(v) => Some((*v, as_text::TimeUnit::Millisecond)),
        Avro::TimestampMicros(v) => Some((*v, as_text::TimeUnit::Microsecond)),
        Avro::TimestampNanos(v) => Some((*v, as_text::TimeUnit::Nanosecond)),
        _ => None,
    }
}

/// A float; JSON has no NaN or infinities, which become text.
/// The exact digits of a decimal whose unscaled value is `bytes`, big-endian two's complement, of `scale`.
fn decimal_text(bytes: &[u8], scale: usize) -> String {
    let scale = i8::try_from(scale).unwrap_or(i8::MAX);
    if bytes.len() <= 16 {
        let negative = bytes.first().is_some_and(|first| first & 0x80 != 0);
        let mut wide = [if negative { 0xff } else { 0 }; 16];
        wide[16 - bytes.len()..].copy_from_slice(bytes);
        return as_text::decimal(i128::from_be_bytes(wide), scale);
    }
    // Wider than any i128 (more than 38 digits): the magnitude's digits by long division.
    let negative = bytes[0] & 0x80 != 0;
    let mut magnitude: Vec<u8> = if negative { negate(bytes) } else { bytes.to_vec() };
    let mut digits = Vec::new();
    while magnitude.iter().any(|byte| *byte != 0) {
        let mut remainder = 0u32;
        for byte in &mut magnitude {
            let value = (remainder << 8) | u32::from(*byte);
            *byte = (value / 10) as u8;
            remainder = value % 10;
        }
        digits.push(b'0' + remainder as u8);
    }
    let scale = scale.max(0) as usize;
    while digits.len() <= scale {
        digits.push(b'0');
    }
    digits.reverse();
    let digits = String::from_utf8(digits).expect("ASCII digits");
    let (whole, fraction) = digits.split_at(digits.len() - scale);
    let sign = if negative { "-" } else { "" };
    if fraction.is_empty() { format!("{sign}{whole}") } else { format!("{sign}{whole}.{fraction}") }
}

/// The two's complement negation of big-endian `bytes`.
fn negate(bytes: &[u8]) -> Vec<u8> {
    let mut out: Vec<u8> = bytes.iter().map(|byte| !byte).collect();
    for byte in out.iter_mut().rev() {
        let (sum, carry) = byte.overflowing_add(1);
        *byte = sum;
        if !carry {
            break;
        }
    }
    out
}

export_ranged_parser!(AvroFile);

#[cfg(test)]
mod tests {
    use super::{AvroFile, decimal_text};
    use apache_avro::types::{Record, Value as Avro};
    use apache_avro::{Codec, DeflateSettings, Schema, Writer, ZstandardSettings};
    use serde_json::json;
    use sluice_plugin_sdk::testing::parse_ranged;

    const SCHEMA: &str = r#"{
        "type": "record", "name": "Order", "namespace": "shop",
        "fields": [
            {"name": "id", "type": "long"},
            {"name": "customer", "type": ["null", "string"]},
            {"name": "status", "type": {"type": "enum", "name": "Status", "symbols": ["open", "paid"]}},
            {"name": "total", "type": {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2}},
            {"name": "day", "type": {"type": "int", "logicalType": "date"}},
            {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
            {"name": "local", "type": {"type": "long", "logicalType": "local-timestamp-micros"}},
            {"name": "ratio", "type": "double"},
            {"name": "raw", "type": "bytes"},
            {"name": "tags", "type": {"type": "array", "items": "string"}},
            {"name": "attributes", "type": {"type": "map", "values": "long"}},
            {"name": "address", "type": ["null", {"type": "record", "name": "Address",
                "fields": [{"name": "city", "type": "string"}]}]},
            {"name": "billing", "type": ["null", "Address"]}
        ]
    }"#;

    fn file(codec: Codec, orders: u32) -> Vec<u8> {
        let schema = Schema::parse_str(SCHEMA).unwrap();
        let mut writer = Writer::with_codec(&schema, Vec::new(), codec);
        for n in 0..orders {
            let mut record = Record::new(&schema).unwrap();
            record.put("id", i64::from(n));
            let customer = if n % 2 == 0 {
                Avro::Union(1, Box::new(Avro::String(format!("c{n}"))))
            } else {
                Avro::Union(0, Box::new(Avro::Null))
            };
            record.put("customer", customer);
            record.put("status", Avro::Enum(n % 2, ["open", "paid"][n as usize % 2].into()));
            record.put(
                "total",
                Avro::Decimal(apache_avro::Decimal::from((-1234i64 - i64::from(n)).to_be_bytes())),
            );
            record.put("day", Avro::Date(20_762));
            record.put("at", Avro::TimestampMillis(1_793_880_000_250));
            record.put("local", Avro::LocalTimestampMicros(1_793_880_000_000_001));
            record.put("ratio", 0.5f64);
            record.put("raw", Avro::Bytes(vec![0, 1, 2]));
            record.put("tags", Avro::Array(vec![Avro::String("a".into()), Avro::String("b".into())]));
            record.put(
                "attributes",
                Avro::Map([("z".to_string(), Avro::Long(1)), ("a".to_string(), Avro::Long(2))].into()),
            );
            let address =
                Avro::Union(1, Box::new(Avro::Record(vec![("city".into(), Avro::String("Lyon".into()))])));
            record.put("address", address.clone());
            record.put("billing", address);
            writer.append(record).unwrap();
        }
        writer.into_inner().unwrap()
    }

    #[test]
    fn every_type_by_the_schema_of_the_file_in_every_codec() {
        for codec in [
            Codec::Null,
            Codec::Deflate(DeflateSettings::default()),
            Codec::Snappy,
            Codec::Zstandard(ZstandardSettings::default()),
        ] {
            let outcome = parse_ranged::<AvroFile>(&[], file(codec, 3)).unwrap();
            assert_eq!(outcome.lines, vec![1, 2, 3], "{codec:?}");
            assert_eq!(
                outcome.records[0],
                json!({
                    "id": 0, "customer": "c0", "status": "open", "total": "-12.34", "day": "2026-11-05",
                    "at": "2026-11-05T12:00:00.250Z", "local": "2026-11-05T12:00:00.000001", "ratio": 0.5,
                    "raw": "AAEC", "tags": ["a", "b"], "attributes": {"a": 2, "z": 1},
                    "address": {"city": "Lyon"}, "billing": {"city": "Lyon"},
                }),
                "{codec:?}"
            );
            assert_eq!(outcome.records[1]["customer"], json!(null));
            assert_eq!(outcome.records[2]["total"], json!("-12.36"));
        }
        let floats = parse_ranged::<AvroFile>(&[("decimals", "float")], file(Codec::Null, 1)).unwrap();
        assert_eq!(floats.records[0]["total"], json!(-12.34));
    }

    #[test]
    fn a_cut_file_keeps_the_blocks_before_the_cut_and_a_file_that_is_not_avro_is_refused() {
        let whole = file(Codec::Deflate(DeflateSettings::default()), 20_000);
        let cut = whole[..whole.len() * 3 / 4].to_vec();
        let error = parse_ranged::<AvroFile>(&[], cut).unwrap_err();
        // The failing call hands on the records it read before the cut; earlier calls handed on theirs.
        let kept: u32 = error.completed.batches.iter().map(|batch| batch.rows).sum();
        assert!(error.line > 1 && error.line < 20_000, "{}", error.message);
        assert_eq!(u64::from(kept), (error.line - 1) % super::RECORDS_PER_CALL as u64, "{}", error.message);
        assert!(error.message.contains("cannot be read"), "{}", error.message);

        let refused = parse_ranged::<AvroFile>(&[], b"id,name\n1,a\n".to_vec()).unwrap_err();
        assert!(refused.message.contains("not an Avro object container file"), "{}", refused.message);
        assert!(parse_ranged::<AvroFile>(&[("decimals", "exact")], whole.clone()).is_err());
    }

    #[test]
    fn decimals_wider_than_an_i128_keep_every_digit() {
        let mut bytes = vec![0u8; 20];
        bytes[0] = 0x01; // 2^152
        assert_eq!(decimal_text(&bytes, 0), "5708990770823839524233143877797980545530986496");
        let mut negative = vec![0xffu8; 20];
        negative[19] = 0xfe; // -2
        assert_eq!(decimal_text(&negative, 3), "-0.002");
        assert_eq!(decimal_text(&[0x04, 0xd2], 2), "12.34");
    }
}
