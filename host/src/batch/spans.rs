//! Span batches (contract 1.4.0): text a streaming parser hands over as offsets into the bytes the host fed
//! it (the call's window), rather than as copies. Every span is checked against the window before one
//! byte of it is read. The column then keeps the window (shared by the batch's columns) and its spans: a
//! sink reads each value where it lies, and only a conversion to Arrow gathers them into a buffer.

use super::typed::{TypedValues, Validity, lines_of, typed_column};
use super::{Column, RecordBatch, Values};
use crate::plugin::span_wire::{SpanBatch, SpanColumn, SpanColumnValues, SpanValues};
use std::fmt;
use std::sync::Arc;

/// Set in a row's start offset where its bytes are in the column's copied data, not the window.
const COPIED: u32 = 1 << 31;

/// The length of a value gathered as a block of fixed size.
const SHORT: usize = 16;

/// A column of text as spans: row `i` is `window[bounds[2i]..bounds[2i+1]]`, or, where the start has
/// [`COPIED`] set, that range (without the bit) of `copied`. Checked when made.
#[derive(Clone)]
pub(crate) struct Spans {
    window: Arc<Vec<u8>>,
    bounds: Vec<u32>,
    copied: Vec<u8>,
}

impl fmt::Debug for Spans {
    /// The sizes, not the window's bytes (a MiB, most of it other columns').
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Spans")
            .field("rows", &self.len())
            .field("window_bytes", &self.window.len())
            .field("copied_bytes", &self.copied.len())
            .finish()
    }
}

impl Spans {
    /// The bytes of `row`.
    pub(crate) fn get(&self, row: usize) -> &[u8] {
        let (start, end) = (self.bounds[2 * row], self.bounds[2 * row + 1] as usize);
        match start & COPIED {
            0 => &self.window[start as usize..end],
            _ => &self.copied[(start & !COPIED) as usize..end],
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.bounds.len() / 2
    }

    /// The values one after another: the text's end offsets and bytes.
    pub(crate) fn gather(&self) -> (Vec<u32>, Vec<u8>) {
        let total: usize =
            self.bounds.chunks_exact(2).map(|span| (span[1] - (span[0] & !COPIED)) as usize).sum();
        // Most values are short: they are copied `SHORT` bytes at a time, a copy of fixed size that needs no
        // call to `memcpy`, into a buffer with as many bytes to spare (the next value overwrites the excess).
        let mut data = vec![0; total + SHORT];
        let mut ends = Vec::with_capacity(self.len());
        let mut at = 0;
        for span in self.bounds.chunks_exact(2) {
            let (bytes, start) = match span[0] & COPIED {
                0 => (&self.window[..], span[0] as usize),
                _ => (&self.copied[..], (span[0] & !COPIED) as usize),
            };
            let len = span[1] as usize - start;
            if len <= SHORT && start + SHORT <= bytes.len() {
                data[at..at + SHORT].copy_from_slice(&bytes[start..start + SHORT]);
            } else {
                data[at..at + len].copy_from_slice(&bytes[start..start + len]);
            }
            at += len;
            ends.push(at as u32);
        }
        data.truncate(total);
        (ends, data)
    }
}

impl RecordBatch {
    /// Takes a span batch as it crossed the component boundary, its spans indexing `window` (the bytes the
    /// parser kept from its previous call, then this call's chunk). Refused, saying which column and row,
    /// where a span ends before it starts or past its bytes, or overlaps (or goes back before) the span of
    /// the row before it in the same column and bytes; otherwise as [`RecordBatch::from_typed_wire`].
    pub(crate) fn from_span_wire(batch: SpanBatch, window: &Arc<Vec<u8>>) -> Result<Self, String> {
        let rows = batch.rows as usize;
        let lines = lines_of(batch.lines, batch.first_line, rows)?;
        let columns = batch
            .columns
            .into_iter()
            .map(|SpanColumn { name, valid, values }| match values {
                SpanColumnValues::Typed(values) => typed_column(name, valid, values, rows),
                SpanColumnValues::Spans(spans) => {
                    let spans =
                        checked(spans, window, rows).map_err(|what| format!("column `{name}`: {what}"));
                    let valid = Validity::of(valid, rows).map_err(|what| format!("column `{name}`: {what}"));
                    Ok(Column {
                        name,
                        values: Values::Typed { valid: valid?, values: TypedValues::Spans(spans?) },
                    })
                }
            })
            .collect::<Result<_, _>>()?;
        Ok(RecordBatch { rows, columns, lines })
    }
}

/// Which bytes a span indexes.
#[derive(Clone, Copy)]
enum Source {
    Window,
    Copied,
}

/// Checks every span of `spans`, and marks those of copied rows.
fn checked(spans: SpanValues, window: &Arc<Vec<u8>>, rows: usize) -> Result<Spans, String> {
    let SpanValues { mut bounds, copied_rows, copied_data } = spans;
    if bounds.len() != 2 * rows {
        return Err(format!("{} span offsets for {rows} rows (two per row)", bounds.len()));
    }
    if window.len() >= COPIED as usize || copied_data.len() >= COPIED as usize {
        return Err("more than 2 GiB of bytes behind one call's spans".into());
    }
    // A column's spans are all in the window, or all copies, in most batches: each row is then in order
    // and in bounds exactly where the offsets never decrease and the last is within the bytes, which one
    // pass without a branch per row checks. Otherwise, or where that fails, each row is checked and the
    // first one wrong is named.
    let all_within = |len: usize| {
        bounds.windows(2).fold(true, |ok, pair| ok & (pair[0] <= pair[1]))
            && bounds.last().is_none_or(|&last| last as usize <= len)
    };
    if copied_rows.is_empty() && all_within(window.len()) {
        return Ok(Spans { window: window.clone(), bounds, copied: copied_data });
    }
    let every_row_copied = copied_rows.len() == rows
        && copied_rows.iter().enumerate().fold(true, |ok, (i, &row)| ok & (row as usize == i));
    if every_row_copied && all_within(copied_data.len()) {
        bounds.iter_mut().step_by(2).for_each(|start| *start |= COPIED);
        return Ok(Spans { window: window.clone(), bounds, copied: copied_data });
    }
    let mut copied = copied_rows.iter().peekable();
    let mut reached = [0u32; 2];
    for (row, span) in bounds.chunks_exact_mut(2).enumerate() {
        let source =
            if copied.next_if(|&&r| r as usize == row).is_some() { Source::Copied } else { Source::Window };
        let (len, name) = match source {
            Source::Window => (window.len(), "the window"),
            Source::Copied => (copied_data.len(), "its copied data"),
        };
        let (start, end) = (span[0], span[1]);
        let reached = &mut reached[source as usize];
        if end < start {
            return Err(format!("row {row}: span {start}..{end} ends before it starts"));
        }
        if end as usize > len {
            return Err(format!("row {row}: span {start}..{end} runs past the {len} bytes of {name}"));
        }
        if start < *reached {
            return Err(format!(
                "row {row}: span {start}..{end} of {name} overlaps the span of an earlier row, which ends at {reached}"
            ));
        }
        *reached = end;
        if let Source::Copied = source {
            span[0] |= COPIED;
        }
    }
    if let Some(row) = copied.next() {
        return Err(format!("copied row {row} is out of order, repeated, or past the {rows} rows"));
    }
    Ok(Spans { window: window.clone(), bounds, copied: copied_data })
}

#[cfg(test)]
mod tests {
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
        let nulls = RecordBatch::from_span_wire(batch(5, vec![0b1_0011], values), &Arc::new(window.to_vec()))
            .unwrap();
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
        let copied = RecordBatch::from_span_wire(batch_of(all_valid), &Arc::new(window.to_vec())).unwrap();
        assert_eq!(texts(&copied)[2].as_deref(), Some("say \"hi\""));
        assert_eq!(copied.line(4), 6);
        let long = "a value longer than a block of sixteen bytes, copied whole";
        let one = spans(&[0, long.len() as u32], &[], "");
        let whole = RecordBatch::from_span_wire(batch(1, Vec::new(), one), &Arc::new(long.into())).unwrap();
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
        let batch = RecordBatch::from_span_wire(batch, &Arc::new(b"hi".to_vec())).unwrap();
        assert_eq!(batch.value(0, 0).unwrap(), Value::Text("hi"));
        assert_eq!(batch.value(1, 0).unwrap(), Value::Text("abc"));
    }

    #[test]
    fn spans_out_of_range_backwards_or_overlapping_are_refused() {
        let window = &Arc::new(b"0123456789".to_vec());
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
        // Every row copied, and every row in the window, are each checked in one pass.
        let copies = batch(2, Vec::new(), spans(&[0, 1, 1, 2], &[0, 1], "ab"));
        let copies = RecordBatch::from_span_wire(copies, window).unwrap();
        assert_eq!(texts(&copies), [Some("a".to_string()), Some("b".to_string())]);
        let last_past = refused(&[0, 1, 1, 3], &[0, 1], "ab");
        assert_eq!(last_past, "column `note`: row 1: span 1..3 runs past the 2 bytes of its copied data");
        let short_bitmap = batch(9, vec![0xFF], spans(&[0; 18], &[], ""));
        let message = RecordBatch::from_span_wire(short_bitmap, window).unwrap_err();
        assert_eq!(message, "column `note`: a validity bitmap of 1 bytes for 9 rows");
    }
}
