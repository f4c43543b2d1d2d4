//! Typed columns (contract 1.3.0): a column of one type, kept as the flat buffer the plugin handed over
//! (an `i64` per row for integers and timestamps), checked once when the batch is taken.

use super::spans::Spans;
use super::{Column, InvalidText, Lines, RecordBatch, Tags, TimeUnit, Timestamp, Value, Values, span};
use crate::plugin::typed_wire::{
    ColumnValues as WireValues, DictionaryValues, TaggedValues, TextValues, TimeUnit as WireUnit,
    TimestampValues, TypedBatch, TypedColumn,
};

/// Which rows hold a value: Arrow's validity bitmap (bit `i % 8` of byte `i / 8`), or `None` for all.
#[derive(Clone, Debug)]
pub(super) struct Validity(Option<Vec<u8>>);

impl Validity {
    /// A column's bitmap as it crossed the boundary, checked to hold a bit per row.
    pub(super) fn of(bits: Vec<u8>, rows: usize) -> Result<Validity, String> {
        match bits {
            bits if bits.is_empty() => Ok(Validity(None)),
            bits if bits.len() == rows.div_ceil(8) => Ok(Validity(Some(bits))),
            bits => Err(format!("a validity bitmap of {} bytes for {rows} rows", bits.len())),
        }
    }

    pub(super) fn is_valid(&self, row: usize) -> bool {
        self.0.as_ref().is_none_or(|bits| bits[row / 8] >> (row % 8) & 1 == 1)
    }

    /// The bitmap, where some row is null.
    pub(super) fn bitmap(&self) -> Option<&[u8]> {
        self.0.as_deref()
    }
}

/// A typed column's values, one per row (a null row's is whatever the plugin left there).
#[derive(Clone, Debug)]
pub(super) enum TypedValues {
    /// 0 or 1.
    Booleans(Vec<u8>),
    Integers(Vec<i64>),
    Floats(Vec<f64>),
    /// UTF-8 text (or, where `json`, JSON text), row `i` ending at `ends[i]` of `data`.
    Text {
        ends: Vec<u32>,
        data: Vec<u8>,
        json: bool,
    },
    Timestamps {
        unit: TimeUnit,
        utc: bool,
        values: Vec<i64>,
    },
    /// UTF-8 text drawn from a dictionary: row `i` is value `keys[i]`, ending at `ends[keys[i]]` of `data`.
    Dictionary {
        keys: Vec<u32>,
        ends: Vec<u32>,
        data: Vec<u8>,
    },
    /// UTF-8 text still in the bytes a span parser was fed (contract 1.4.0).
    Spans(Spans),
}

impl TypedValues {
    pub(super) fn value<'a>(&'a self, name: &str, row: usize) -> Result<Value<'a>, InvalidText> {
        Ok(match self {
            TypedValues::Booleans(values) => Value::Boolean(values[row] != 0),
            TypedValues::Integers(values) => Value::Integer(values[row]),
            TypedValues::Floats(values) => Value::Float(values[row]),
            TypedValues::Text { ends, data, json } => {
                let text = std::str::from_utf8(span(ends, data, row))
                    .map_err(|_| InvalidText { column: name.to_string(), row })?;
                if *json { Value::Json(text) } else { Value::Text(text) }
            }
            TypedValues::Timestamps { unit, utc, values } => {
                Value::Timestamp(Timestamp { value: values[row], unit: *unit, utc: *utc })
            }
            TypedValues::Dictionary { keys, ends, data } => Value::Text(
                std::str::from_utf8(span(ends, data, keys[row] as usize))
                    .map_err(|_| InvalidText { column: name.to_string(), row })?,
            ),
            TypedValues::Spans(spans) => Value::Text(
                std::str::from_utf8(spans.get(row))
                    .map_err(|_| InvalidText { column: name.to_string(), row })?,
            ),
        })
    }

    fn len(&self) -> usize {
        match self {
            TypedValues::Booleans(values) => values.len(),
            TypedValues::Integers(values) | TypedValues::Timestamps { values, .. } => values.len(),
            TypedValues::Floats(values) => values.len(),
            TypedValues::Text { ends, .. } => ends.len(),
            TypedValues::Dictionary { keys, .. } => keys.len(),
            TypedValues::Spans(spans) => spans.len(),
        }
    }
}

impl RecordBatch {
    /// Takes a typed batch as it crossed the component boundary, checking its layout as
    /// [`RecordBatch::from_wire`] does: every column has a value per row, a validity bitmap (where there
    /// is one) has a bit per row, and text offsets ascend within the data. Text is checked to be UTF-8 when
    /// it is read.
    pub(crate) fn from_typed_wire(batch: TypedBatch) -> Result<Self, String> {
        let rows = batch.rows as usize;
        let lines = lines_of(batch.lines, batch.first_line, rows)?;
        let columns = batch
            .columns
            .into_iter()
            .map(|TypedColumn { name, valid, values }| typed_column(name, valid, values, rows))
            .collect::<Result<_, _>>()?;
        Ok(RecordBatch { rows, columns, lines })
    }
}

/// The line of each of `rows` records: listed one per record, or numbered from `first_line`.
pub(super) fn lines_of(lines: Vec<u64>, first_line: u64, rows: usize) -> Result<Lines, String> {
    Ok(match (lines, first_line) {
        (lines, 0) if lines.len() == rows => Lines::Listed(lines),
        (lines, 0) => return Err(format!("{} line numbers for {rows} rows", lines.len())),
        (lines, first) if lines.is_empty() => match first.checked_add(rows as u64) {
            Some(_) => Lines::From(first),
            None => {
                return Err(format!("records numbered from line {first} run past the last line there is"));
            }
        },
        (lines, first) => {
            return Err(format!("{} line numbers and a first line ({first}): one or the other", lines.len()));
        }
    })
}

/// A typed column of `rows` values, checked.
pub(super) fn typed_column(
    name: String,
    valid: Vec<u8>,
    values: WireValues,
    rows: usize,
) -> Result<Column, String> {
    let bad = |what: String| Err(format!("column `{name}`: {what}"));
    let values = match values {
        WireValues::Mixed(TaggedValues { types, ends, data }) => {
            if !valid.is_empty() {
                return bad(
                    "mixed values carry their nulls in their tags, and have no validity bitmap".into()
                );
            }
            let tags = Tags { types, ends, data };
            tags.check(rows).map_err(|what| format!("column `{name}` {what}"))?;
            return Ok(Column { name, values: Values::Tagged(tags) });
        }
        WireValues::Booleans(values) => TypedValues::Booleans(values),
        WireValues::Integers(values) => TypedValues::Integers(values),
        WireValues::Floats(values) => TypedValues::Floats(values),
        WireValues::Text(TextValues { ends, data }) => TypedValues::Text { ends, data, json: false },
        WireValues::Json(TextValues { ends, data }) => TypedValues::Text { ends, data, json: true },
        WireValues::Timestamps(TimestampValues { unit, utc, values }) => {
            let unit = match unit {
                WireUnit::Second => TimeUnit::Second,
                WireUnit::Millisecond => TimeUnit::Millisecond,
                WireUnit::Microsecond => TimeUnit::Microsecond,
                WireUnit::Nanosecond => TimeUnit::Nanosecond,
            };
            TypedValues::Timestamps { unit, utc, values }
        }
        WireValues::Dictionary(DictionaryValues { keys, values: TextValues { ends, data } }) => {
            TypedValues::Dictionary { keys, ends, data }
        }
    };
    if values.len() != rows {
        return bad(format!("{} values for {rows} rows", values.len()));
    }
    let valid = Validity::of(valid, rows).map_err(|what| format!("column `{name}`: {what}"))?;
    match &values {
        TypedValues::Text { ends, data, .. } => {
            check_ends(ends, data.len()).map_err(|what| format!("column `{name}`: row {what}"))?;
        }
        TypedValues::Dictionary { keys, ends, data } => {
            check_ends(ends, data.len())
                .map_err(|what| format!("column `{name}`: dictionary value {what}"))?;
            let mut keys = keys.iter().enumerate();
            if let Some((row, key)) =
                keys.find(|&(row, &key)| key as usize >= ends.len() && valid.is_valid(row))
            {
                return bad(format!(
                    "row {row}: key {key} is outside its dictionary of {} values",
                    ends.len()
                ));
            }
        }
        _ => {}
    }
    Ok(Column { name, values: Values::Typed { valid, values } })
}

/// Checks that text end offsets ascend within `len` bytes; says which one does not.
fn check_ends(ends: &[u32], len: usize) -> Result<(), String> {
    let mut start = 0;
    for (index, &end) in ends.iter().enumerate() {
        if end < start || end as usize > len {
            return Err(format!("{index}: text offset {end} is out of order or past the data"));
        }
        start = end;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::{NULL, TEXT};
    use super::*;

    fn batch(rows: u32, columns: Vec<TypedColumn>) -> TypedBatch {
        TypedBatch { rows, columns, lines: Vec::new(), first_line: 5 }
    }

    fn column(valid: Vec<u8>, values: WireValues) -> TypedColumn {
        TypedColumn { name: "c".into(), valid, values }
    }

    fn text(ends: Vec<u32>, data: &[u8]) -> WireValues {
        WireValues::Text(TextValues { ends, data: data.to_vec() })
    }

    #[test]
    fn typed_values_read_as_values_with_their_nulls_and_timestamps_as_rfc_3339() {
        let stamps = WireValues::Timestamps(TimestampValues {
            unit: WireUnit::Microsecond,
            utc: true,
            values: vec![1_764_547_200_000_001, 0, -1],
        });
        let taken = RecordBatch::from_typed_wire(batch(
            3,
            vec![
                column(vec![0b101], stamps),
                column(vec![], WireValues::Integers(vec![7, -8, 9])),
                column(vec![0b110], text(vec![0, 2, 4], b"abcd")),
            ],
        ))
        .unwrap();
        let at = |row| taken.value(0, row).unwrap();
        assert_eq!(at(1), Value::Null);
        let Value::Timestamp(first) = at(0) else { panic!("{:?}", at(0)) };
        assert_eq!(first.to_string(), "2025-12-01T00:00:00.000001Z");
        let Value::Timestamp(last) = at(2) else { panic!("{:?}", at(2)) };
        assert_eq!(last.to_string(), "1969-12-31T23:59:59.999999Z");
        assert_eq!(taken.value(1, 1).unwrap(), Value::Integer(-8));
        assert_eq!(
            (taken.value(2, 0).unwrap(), taken.value(2, 2).unwrap()),
            (Value::Null, Value::Text("cd"))
        );
        assert_eq!((taken.line(0), taken.line(2)), (5, 7), "numbered from the first line");

        let mut json = Vec::new();
        taken.write_json_row(0, &mut json).unwrap();
        assert_eq!(
            String::from_utf8(json).unwrap(),
            "{\"c\":\"2025-12-01T00:00:00.000001Z\",\"c\":7,\"c\":null}\n"
        );
        // A template takes contract 1.0's layout: the timestamp is written as its text there.
        let wire = taken.to_wire();
        assert_eq!(wire.columns[0].types, vec![TEXT, NULL, TEXT]);
        assert_eq!(&wire.columns[0].data[..27], b"2025-12-01T00:00:00.000001Z");
    }

    fn dictionary(keys: Vec<u32>, ends: Vec<u32>, data: &[u8]) -> WireValues {
        WireValues::Dictionary(DictionaryValues { keys, values: TextValues { ends, data: data.to_vec() } })
    }

    #[test]
    fn text_drawn_from_a_dictionary_reads_by_its_keys_and_a_key_outside_it_is_refused() {
        let names = dictionary(vec![1, 7, 0], vec![3, 5], b"annbo");
        let taken = RecordBatch::from_typed_wire(batch(3, vec![column(vec![0b101], names)])).unwrap();
        let values: Vec<_> = (0..3).map(|row| taken.value(0, row).unwrap()).collect();
        assert_eq!(
            values,
            [Value::Text("bo"), Value::Null, Value::Text("ann")],
            "a null row's key is not read"
        );
        let arrow = taken.into_arrow().unwrap();
        assert_eq!(arrow.schema().field(0).data_type(), &arrow_schema::DataType::Utf8);

        let refused = |keys, ends, data: &[u8]| {
            RecordBatch::from_typed_wire(batch(3, vec![column(vec![], dictionary(keys, ends, data))]))
                .unwrap_err()
        };
        let outside = refused(vec![0, 2, 1], vec![3, 5], b"annbo");
        assert_eq!(outside, "column `c`: row 1: key 2 is outside its dictionary of 2 values");
        let past = refused(vec![0, 0, 0], vec![3, 9], b"annbo");
        assert_eq!(past, "column `c`: dictionary value 1: text offset 9 is out of order or past the data");
    }

    #[test]
    fn a_malformed_typed_batch_is_refused_saying_what_is_wrong() {
        let refused = |columns| RecordBatch::from_typed_wire(batch(3, columns)).unwrap_err();
        let short = refused(vec![column(vec![], WireValues::Floats(vec![1.0, 2.0]))]);
        assert_eq!(short, "column `c`: 2 values for 3 rows");
        let past = refused(vec![column(vec![], text(vec![1, 2, 9], b"abc"))]);
        assert!(past.contains("row 2: text offset 9 is out of order or past the data"), "{past}");
        let backwards = refused(vec![column(vec![], text(vec![2, 1, 3], b"abc"))]);
        assert!(backwards.contains("row 1: text offset 1 is out of order"), "{backwards}");
        let bitmap = refused(vec![column(vec![0xff, 0xff], WireValues::Integers(vec![1, 2, 3]))]);
        assert!(bitmap.contains("a validity bitmap of 2 bytes for 3 rows"), "{bitmap}");
        let tagged =
            WireValues::Mixed(TaggedValues { types: vec![2, 0, 9], ends: vec![8, 8, 8], data: vec![0; 8] });
        let mixed = refused(vec![column(vec![], tagged)]);
        assert!(mixed.contains("column `c` row 2: bad type tag 9"), "{mixed}");
        let lines = |lines: Vec<u64>, first_line| {
            RecordBatch::from_typed_wire(TypedBatch { rows: 2, columns: vec![], lines, first_line })
                .unwrap_err()
        };
        assert_eq!(lines(vec![1], 0), "1 line numbers for 2 rows");
        assert_eq!(lines(vec![1, 2], 1), "2 line numbers and a first line (1): one or the other");
        assert!(lines(vec![], u64::MAX).contains("run past the last line there is"));
        let listed = TypedBatch { rows: 2, columns: vec![], lines: vec![3, 9], first_line: 0 };
        assert_eq!(RecordBatch::from_typed_wire(listed).unwrap().line(1), 9);
    }
}
