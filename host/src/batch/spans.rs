//! Span batches (contract 1.4.0): text a streaming parser hands over as offsets into the bytes the host fed
//! it (the call's window), rather than as copies. Every span is checked against the window before one
//! byte of it is read, and the values are gathered into a text column of the host's own.

use super::typed::{TypedValues, Validity, lines_of, typed_column};
use super::{Column, RecordBatch, Values};
use crate::plugin::span_wire::{SpanBatch, SpanColumn, SpanColumnValues, SpanValues};

impl RecordBatch {
    /// Takes a span batch as it crossed the component boundary, its spans indexing `window` (the bytes the
    /// parser kept from its previous call, then this call's chunk). Refused, saying which column and row,
    /// where a span ends before it starts or past its bytes, or overlaps (or goes back before) the span of
    /// the row before it in the same column and bytes; otherwise as [`RecordBatch::from_typed_wire`].
    pub(crate) fn from_span_wire(batch: SpanBatch, window: &[u8]) -> Result<Self, String> {
        let rows = batch.rows as usize;
        let lines = lines_of(batch.lines, batch.first_line, rows)?;
        let columns = batch
            .columns
            .into_iter()
            .map(|SpanColumn { name, valid, values }| match values {
                SpanColumnValues::Typed(values) => typed_column(name, valid, values, rows),
                SpanColumnValues::Spans(spans) => {
                    let gathered =
                        gather(&spans, window, rows).map_err(|what| format!("column `{name}`: {what}"));
                    let valid = Validity::of(valid, rows).map_err(|what| format!("column `{name}`: {what}"));
                    let (ends, data) = gathered?;
                    Ok(Column {
                        name,
                        values: Values::Typed {
                            valid: valid?,
                            values: TypedValues::Text { ends, data, json: false },
                        },
                    })
                }
            })
            .collect::<Result<_, _>>()?;
        Ok(RecordBatch { rows, columns, lines })
    }
}

/// The length of a value copied as a block of fixed size.
const SHORT: usize = 16;

/// Which bytes a span indexes.
#[derive(Clone, Copy)]
enum Source {
    Window,
    Copied,
}

/// Checks every span of `spans`, then copies their bytes one after another: the text's end offsets and data.
fn gather(spans: &SpanValues, window: &[u8], rows: usize) -> Result<(Vec<u32>, Vec<u8>), String> {
    let SpanValues { bounds, copied_rows, copied_data } = spans;
    if bounds.len() != 2 * rows {
        return Err(format!("{} span offsets for {rows} rows (two per row)", bounds.len()));
    }
    // Where the bytes of each row come from, checked in a first pass that also sizes the text.
    let mut copied = copied_rows.iter().peekable();
    let mut reached = [0usize; 2];
    let mut total = 0usize;
    for (row, span) in bounds.chunks_exact(2).enumerate() {
        let source =
            if copied.next_if(|&&r| r as usize == row).is_some() { Source::Copied } else { Source::Window };
        let (bytes, name) = match source {
            Source::Window => (window, "the window"),
            Source::Copied => (&copied_data[..], "its copied data"),
        };
        let (start, end) = (span[0] as usize, span[1] as usize);
        let reached = &mut reached[source as usize];
        if end < start {
            return Err(format!("row {row}: span {start}..{end} ends before it starts"));
        }
        if end > bytes.len() {
            return Err(format!(
                "row {row}: span {start}..{end} runs past the {} bytes of {name}",
                bytes.len()
            ));
        }
        if start < *reached {
            return Err(format!(
                "row {row}: span {start}..{end} of {name} overlaps the span of an earlier row, which ends at {reached}"
            ));
        }
        *reached = end;
        total += end - start;
    }
    if let Some(row) = copied.next() {
        return Err(format!("copied row {row} is out of order, repeated, or past the {rows} rows"));
    }
    if u32::try_from(total).is_err() {
        return Err(format!("{total} bytes of text, more than one column's offsets can hold"));
    }
    // Most values are short: they are copied `SHORT` bytes at a time, a copy of fixed size that needs no
    // call to `memcpy`, into a buffer with as many bytes to spare (the next value overwrites the excess).
    let mut data = vec![0; total + SHORT];
    let mut ends = Vec::with_capacity(rows);
    let mut at = 0;
    let mut copied = copied_rows.iter().peekable();
    for (row, span) in bounds.chunks_exact(2).enumerate() {
        let bytes = match copied.next_if(|&&r| r as usize == row) {
            Some(_) => copied_data,
            None => window,
        };
        let (start, end) = (span[0] as usize, span[1] as usize);
        let len = end - start;
        if len <= SHORT && start + SHORT <= bytes.len() {
            data[at..at + SHORT].copy_from_slice(&bytes[start..start + SHORT]);
        } else {
            data[at..at + len].copy_from_slice(&bytes[start..end]);
        }
        at += len;
        ends.push(at as u32);
    }
    data.truncate(total);
    Ok((ends, data))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::Value;
    use crate::plugin::typed_wire::{ColumnValues, TextValues};

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
        let batch = RecordBatch::from_span_wire(batch(5, vec![0b1_0011], values), window).unwrap();
        assert_eq!(
            texts(&batch),
            [Some("a"), Some("b"), None, None, Some("x")].map(|t| t.map(String::from)).to_vec()
        );
        // Without the bitmap, row 2 is its copy.
        let all_valid = spans(&[0, 1, 3, 4, 0, 8, 4, 4, 19, 20], &[2], "say \"hi\"");
        let batch = RecordBatch::from_span_wire(batch_of(all_valid), window).unwrap();
        assert_eq!(texts(&batch)[2].as_deref(), Some("say \"hi\""));
        assert_eq!(batch.line(4), 6);
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
        let batch = RecordBatch::from_span_wire(batch, b"hi").unwrap();
        assert_eq!(batch.value(0, 0).unwrap(), Value::Text("hi"));
        assert_eq!(batch.value(1, 0).unwrap(), Value::Text("abc"));
    }

    #[test]
    fn spans_out_of_range_backwards_or_overlapping_are_refused() {
        let window = b"0123456789";
        let refused = |bounds: &[u32], copied_rows: &[u32], copied: &str| {
            let rows = (bounds.len() / 2) as u32;
            RecordBatch::from_span_wire(batch(rows, Vec::new(), spans(bounds, copied_rows, copied)), window)
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
        assert!(RecordBatch::from_span_wire(fits, window).is_ok());
        let short_bitmap = batch(9, vec![0xFF], spans(&[0; 18], &[], ""));
        let message = RecordBatch::from_span_wire(short_bitmap, window).unwrap_err();
        assert_eq!(message, "column `note`: a validity bitmap of 1 bytes for 9 rows");
    }
}
