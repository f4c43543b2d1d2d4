//! The contract's wire types, taken apart as they cross the component boundary: a plugin's batches and
//! rejected rows into the batch's plain data ([`RecordBatch`], checked once as each column is made), and a
//! batch back into contract 1.0's layout for a template.

use super::format_wire::{Batch as WireBatch, Column as WireColumn, RejectedRow as WireRejectedRow};
use super::span_wire::{SpanBatch, SpanColumn, SpanColumnValues, SpanValues};
use super::typed_wire::{
    ColumnValues as WireValues, DictionaryValues, TaggedValues, TextValues, TimeUnit as WireUnit,
    TimestampValues, TypedBatch, TypedColumn,
};
use crate::batch::{
    Column, Lines, RecordBatch, RejectStage, RejectedRow, Tags, TimeUnit, TypedValues, UncheckedSpans,
};
use std::sync::Arc;

/// Takes a batch as it crossed the component boundary (contract 1.0), checking its layout: every column
/// has a tag and an end offset per row, offsets ascend within the data, tags are known, and fixed-width
/// values have their width. Text is checked to be UTF-8 when it is read.
pub(super) fn batch_from_wire(batch: WireBatch) -> Result<RecordBatch, String> {
    let rows = batch.rows as usize;
    let lines = Lines::of(batch.lines, 0, rows)?;
    let columns = batch
        .columns
        .into_iter()
        .map(|WireColumn { name, types, ends, data }| Column::tagged(name, Tags { types, ends, data }, rows))
        .collect::<Result<_, _>>()?;
    Ok(RecordBatch::from_columns(rows, columns, lines))
}

/// The batch in the form it crosses the component boundary in, to hand it to a template (which takes
/// contract 1.0's layout: a typed column's values are written in it).
pub(super) fn batch_to_wire(batch: &RecordBatch) -> WireBatch {
    let (columns, lines) = batch.to_tagged();
    WireBatch {
        rows: batch.num_rows() as u32,
        columns: columns
            .into_iter()
            .map(|(name, Tags { types, ends, data })| WireColumn { name, types, ends, data })
            .collect(),
        lines,
    }
}

/// Takes a typed batch as it crossed the component boundary (contract 1.3.0), checking its layout as
/// [`batch_from_wire`] does: every column has a value per row, a validity bitmap (where there is one) has
/// a bit per row, and text offsets ascend within the data.
pub(super) fn batch_from_typed_wire(batch: TypedBatch) -> Result<RecordBatch, String> {
    let rows = batch.rows as usize;
    let lines = Lines::of(batch.lines, batch.first_line, rows)?;
    let columns = batch
        .columns
        .into_iter()
        .map(|TypedColumn { name, valid, values }| typed_column(name, valid, values, rows))
        .collect::<Result<_, _>>()?;
    Ok(RecordBatch::from_columns(rows, columns, lines))
}

/// Takes a span batch as it crossed the component boundary (contract 1.4.0), its spans indexing `window`
/// (the bytes the parser kept from its previous call, then this call's chunk). Refused, saying which
/// column and row, where a span ends before it starts or past its bytes, or overlaps (or goes back
/// before) the span of the row before it in the same column and bytes; otherwise as
/// [`batch_from_typed_wire`].
pub(super) fn batch_from_span_wire(batch: SpanBatch, window: &Arc<Vec<u8>>) -> Result<RecordBatch, String> {
    let rows = batch.rows as usize;
    let lines = Lines::of(batch.lines, batch.first_line, rows)?;
    let columns = batch
        .columns
        .into_iter()
        .map(|SpanColumn { name, valid, values }| match values {
            SpanColumnValues::Typed(values) => typed_column(name, valid, values, rows),
            SpanColumnValues::Spans(SpanValues { bounds, copied_rows, copied_data }) => {
                Column::spans(name, valid, UncheckedSpans { bounds, copied_rows, copied_data }, window, rows)
            }
        })
        .collect::<Result<_, _>>()?;
    Ok(RecordBatch::from_columns(rows, columns, lines))
}

/// A reject as it crossed the component boundary from a plugin that refused it at `stage`.
pub(super) fn rejected_from_wire(wire: WireRejectedRow, stage: RejectStage) -> RejectedRow {
    RejectedRow { line: wire.line, reason: wire.reason, raw: wire.raw, stage }
}

/// A typed column of `rows` values, checked.
fn typed_column(name: String, valid: Vec<u8>, values: WireValues, rows: usize) -> Result<Column, String> {
    let values = match values {
        WireValues::Mixed(TaggedValues { types, ends, data }) => {
            if !valid.is_empty() {
                return Err(format!(
                    "column `{name}`: mixed values carry their nulls in their tags, and have no validity bitmap"
                ));
            }
            return Column::tagged(name, Tags { types, ends, data }, rows);
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
    Column::typed(name, valid, values, rows)
}

/// Typed batches (contract 1.3.0) as they cross.
#[cfg(test)]
mod typed_tests {
    use super::*;
    use crate::batch::{NULL, TEXT, Value};

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
        let taken = batch_from_typed_wire(batch(
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
        let wire = batch_to_wire(&taken);
        assert_eq!(wire.columns[0].types, vec![TEXT, NULL, TEXT]);
        assert_eq!(&wire.columns[0].data[..27], b"2025-12-01T00:00:00.000001Z");
    }

    fn dictionary(keys: Vec<u32>, ends: Vec<u32>, data: &[u8]) -> WireValues {
        WireValues::Dictionary(DictionaryValues { keys, values: TextValues { ends, data: data.to_vec() } })
    }

    #[test]
    fn text_drawn_from_a_dictionary_reads_by_its_keys_and_a_key_outside_it_is_refused() {
        let names = dictionary(vec![1, 7, 0], vec![3, 5], b"annbo");
        let taken = batch_from_typed_wire(batch(3, vec![column(vec![0b101], names)])).unwrap();
        let values: Vec<_> = (0..3).map(|row| taken.value(0, row).unwrap()).collect();
        assert_eq!(
            values,
            [Value::Text("bo"), Value::Null, Value::Text("ann")],
            "a null row's key is not read"
        );
        let arrow = taken.into_arrow().unwrap();
        assert_eq!(arrow.schema().field(0).data_type(), &arrow_schema::DataType::Utf8);

        let refused = |keys, ends, data: &[u8]| {
            batch_from_typed_wire(batch(3, vec![column(vec![], dictionary(keys, ends, data))])).unwrap_err()
        };
        let outside = refused(vec![0, 2, 1], vec![3, 5], b"annbo");
        assert_eq!(outside, "column `c`: row 1: key 2 is outside its dictionary of 2 values");
        let past = refused(vec![0, 0, 0], vec![3, 9], b"annbo");
        assert_eq!(past, "column `c`: dictionary value 1: text offset 9 is out of order or past the data");
    }

    #[test]
    fn a_malformed_typed_batch_is_refused_saying_what_is_wrong() {
        let refused = |columns| batch_from_typed_wire(batch(3, columns)).unwrap_err();
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
            batch_from_typed_wire(TypedBatch { rows: 2, columns: vec![], lines, first_line }).unwrap_err()
        };
        assert_eq!(lines(vec![1], 0), "1 line numbers for 2 rows");
        assert_eq!(lines(vec![1, 2], 1), "2 line numbers and a first line (1): one or the other");
        assert!(lines(vec![], u64::MAX).contains("run past the last line there is"));
        let listed = TypedBatch { rows: 2, columns: vec![], lines: vec![3, 9], first_line: 0 };
        assert_eq!(batch_from_typed_wire(listed).unwrap().line(1), 9);
    }
}

/// Span batches (contract 1.4.0) as they cross.
#[cfg(test)]
mod span_tests {
    use super::*;
    use crate::batch::Value;
    use crate::plugin::typed_wire::{ColumnValues, TextValues};
    use arrow_array::cast::AsArray;

    fn spans(bounds: &[u32], copied_rows: &[u32], copied: &str) -> SpanColumnValues {
        SpanColumnValues::Spans(SpanValues {
            bounds: bounds.to_vec(),
            copied_rows: copied_rows.to_vec(),
            copied_data: copied.as_bytes().to_vec(),
        })
    }

    fn batch(rows: u32, valid: Vec<u8>, values: SpanColumnValues) -> SpanBatch {
        SpanBatch {
            rows,
            columns: vec![SpanColumn { name: "note".into(), valid, values }],
            lines: (2..2 + u64::from(rows)).collect(),
            first_line: 0,
        }
    }

    fn texts(batch: &RecordBatch) -> Vec<Option<String>> {
        (0..batch.num_rows())
            .map(|row| match batch.value(0, row).unwrap() {
                Value::Text(text) => Some(text.to_string()),
                Value::Null => None,
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn spans_are_read_from_the_window_and_copies_from_the_copied_data() {
        let window = b"a,\"b\",\"say \"\"hi\"\"\"\nx,y,z";
        // Row 0: `a`; row 1: `b` inside its quotes; row 2: copied, but null by the bitmap; row 3: null (an
        // empty span); row 4: `x`.
        let values = spans(&[0, 1, 3, 4, 0, 8, 4, 4, 19, 20], &[2], "say \"hi\"");
        let nulls =
            batch_from_span_wire(batch(5, vec![0b1_0011], values), &Arc::new(window.to_vec())).unwrap();
        assert_eq!(
            texts(&nulls),
            [Some("a"), Some("b"), None, None, Some("x")].map(|t| t.map(String::from)).to_vec()
        );
        // Into Arrow, the values are gathered, each from its own bytes, with the bitmap's nulls.
        let arrow = nulls.into_arrow().unwrap();
        let gathered = arrow.column(0).as_string::<i32>();
        assert_eq!(gathered.iter().collect::<Vec<_>>(), [Some("a"), Some("b"), None, None, Some("x")]);
        // Without the bitmap, row 2 is its copy.
        let all_valid = spans(&[0, 1, 3, 4, 0, 8, 4, 4, 19, 20], &[2], "say \"hi\"");
        let copied = batch_from_span_wire(batch_of(all_valid), &Arc::new(window.to_vec())).unwrap();
        assert_eq!(texts(&copied)[2].as_deref(), Some("say \"hi\""));
        assert_eq!(copied.line(4), 6);
        let long = "a value longer than a block of sixteen bytes, copied whole";
        let one = spans(&[0, long.len() as u32], &[], "");
        let whole = batch_from_span_wire(batch(1, Vec::new(), one), &Arc::new(long.into())).unwrap();
        assert_eq!(whole.into_arrow().unwrap().column(0).as_string::<i32>().value(0), long);
    }

    fn batch_of(values: SpanColumnValues) -> SpanBatch {
        batch(5, Vec::new(), values)
    }

    #[test]
    fn typed_columns_cross_beside_spans() {
        let mut batch = batch(1, Vec::new(), spans(&[0, 2], &[], ""));
        batch.columns.push(SpanColumn {
            name: "n".into(),
            valid: Vec::new(),
            values: SpanColumnValues::Typed(ColumnValues::Text(TextValues {
                ends: vec![3],
                data: b"abc".to_vec(),
            })),
        });
        let batch = batch_from_span_wire(batch, &Arc::new(b"hi".to_vec())).unwrap();
        assert_eq!(batch.value(0, 0).unwrap(), Value::Text("hi"));
        assert_eq!(batch.value(1, 0).unwrap(), Value::Text("abc"));
    }

    #[test]
    fn spans_out_of_range_backwards_or_overlapping_are_refused() {
        let window = &Arc::new(b"0123456789".to_vec());
        let refused = |bounds: &[u32], copied_rows: &[u32], copied: &str| {
            let rows = (bounds.len() / 2) as u32;
            batch_from_span_wire(batch(rows, Vec::new(), spans(bounds, copied_rows, copied)), window)
                .unwrap_err()
        };
        let past = refused(&[0, 4, 8, 11], &[], "");
        assert_eq!(past, "column `note`: row 1: span 8..11 runs past the 10 bytes of the window");
        let backwards = refused(&[5, 3], &[], "");
        assert_eq!(backwards, "column `note`: row 0: span 5..3 ends before it starts");
        let overlapping = refused(&[0, 5, 4, 6], &[], "");
        assert_eq!(
            overlapping,
            "column `note`: row 1: span 4..6 of the window overlaps the span of an earlier row, which ends at 5"
        );
        let copied_past = refused(&[0, 4, 0, 3], &[1], "ab");
        assert_eq!(copied_past, "column `note`: row 1: span 0..3 runs past the 2 bytes of its copied data");
        let copies_overlapping = refused(&[0, 2, 1, 2], &[0, 1], "ab");
        assert!(copies_overlapping.contains("span 1..2 of its copied data overlaps"), "{copies_overlapping}");
        let unordered = refused(&[0, 1, 0, 1], &[1, 0], "ab");
        assert_eq!(unordered, "column `note`: copied row 0 is out of order, repeated, or past the 2 rows");
        let beyond = refused(&[0, 1], &[0, 7], "ab");
        assert!(beyond.contains("copied row 7"), "{beyond}");
        let odd = refused(&[0, 1, 2], &[], "");
        assert_eq!(odd, "column `note`: 3 span offsets for 1 rows (two per row)");
        // A span may reach the window's last byte, and an empty one may sit at its end.
        let fits = batch(2, Vec::new(), spans(&[0, 10, 10, 10], &[], ""));
        assert!(batch_from_span_wire(fits, window).is_ok());
        // Every row copied, and every row in the window, are each checked in one pass.
        let copies = batch(2, Vec::new(), spans(&[0, 1, 1, 2], &[0, 1], "ab"));
        let copies = batch_from_span_wire(copies, window).unwrap();
        assert_eq!(texts(&copies), [Some("a".to_string()), Some("b".to_string())]);
        let last_past = refused(&[0, 1, 1, 3], &[0, 1], "ab");
        assert_eq!(last_past, "column `note`: row 1: span 1..3 runs past the 2 bytes of its copied data");
        let short_bitmap = batch(9, vec![0xFF], spans(&[0; 18], &[], ""));
        let message = batch_from_span_wire(short_bitmap, window).unwrap_err();
        assert_eq!(message, "column `note`: a validity bitmap of 1 bytes for 9 rows");
    }
}
