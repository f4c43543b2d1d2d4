//! Span batches (contract 1.4.0): text a streaming parser hands over as offsets into the bytes the host fed
//! it (the call's window), rather than as copies. Every span is checked against the window before one
//! byte of it is read. The column then keeps the window (shared by the batch's columns) and its spans: a
//! sink reads each value where it lies, and only a conversion to Arrow gathers them into a buffer.

use std::fmt;
use std::sync::Arc;

/// Set in a row's start offset where its bytes are in the column's copied data, not the window.
const COPIED: u32 = 1 << 31;

/// The length of a value gathered as a block of fixed size.
const SHORT: usize = 16;

/// A column's spans as a span parser handed them over, not yet checked: row `i` is
/// `bounds[2i]..bounds[2i+1]` of the window, or, for the rows listed (ascending) in `copied_rows`, of
/// `copied_data`.
pub(crate) struct UncheckedSpans {
    pub(crate) bounds: Vec<u32>,
    pub(crate) copied_rows: Vec<u32>,
    pub(crate) copied_data: Vec<u8>,
}

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

/// Which bytes a span indexes.
#[derive(Clone, Copy)]
enum Source {
    Window,
    Copied,
}

impl Spans {
    /// Checks every span of `spans`, and marks those of copied rows.
    pub(super) fn checked(
        spans: UncheckedSpans,
        window: &Arc<Vec<u8>>,
        rows: usize,
    ) -> Result<Spans, String> {
        let UncheckedSpans { mut bounds, copied_rows, copied_data } = spans;
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
            let source = if copied.next_if(|&&r| r as usize == row).is_some() {
                Source::Copied
            } else {
                Source::Window
            };
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
}
