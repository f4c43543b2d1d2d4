//! Streaming parsers that hand text over as spans of the bytes they were fed (contract 1.4.0, the
//! `typed-format` world): a value that is a run of the input (a CSV field) crosses the boundary as its
//! start and end, not as a copy, and the host copies it out of the bytes it already holds.
//!
//! A plugin implements [`SpanParser`] and exports it with [`export_span_parser!`](crate::export_span_parser).
//! Each call has a window: the bytes the parser kept from the call before ([`SpanEmitter::keep`]), then
//! the call's chunk. The parser holds those same bytes at the end of its own buffer, so a value at offset
//! `i` of its buffer is at `window_len() - buffer.len() + i` of the window. Values that are not a run of
//! the input (a field with doubled quotes, unescaped) are [copied](SpanEmitter::copied). Every call hands
//! over the rows it completed, as its spans index only its own window.

use crate::Options;
use crate::batch::{raw_text, take_keeping_capacity};
use crate::bindings::sluice::plugin::types::{FatalError, RejectedRow};
use crate::span_bindings::exports::sluice::plugin::typed_parser::{FileParser, GuestFileParser};
use crate::span_bindings::sluice::plugin::spans::{
    SpanBatch, SpanColumn, SpanColumnValues, SpanFatalError, SpanOutput, SpanValues,
};
use std::cell::RefCell;
use std::collections::HashMap;

/// A streaming parser of one file that hands text over as spans of its window.
pub trait SpanParser: Sized + 'static {
    /// Builds a parser from the dataflow's `[format.options]`.
    fn create(options: Options) -> Result<Self, FatalError>;
    /// Takes the next chunk; completed records, rejects and the bytes to keep go to `out`.
    fn feed(&mut self, chunk: &[u8], out: &mut SpanEmitter) -> Result<(), FatalError>;
    /// The file has ended (the window is what the parser kept): emit whatever is still held back.
    fn finish(&mut self, out: &mut SpanEmitter) -> Result<(), FatalError>;
}

#[derive(Default)]
struct SpanColumnBuilder {
    name: String,
    /// Two offsets per row.
    bounds: Vec<u32>,
    copied_rows: Vec<u32>,
    copied_data: Vec<u8>,
    /// The rows without a value, ascending (few, in most files): the bitmap is built from them at the end.
    nulls: Vec<u32>,
}

impl SpanColumnBuilder {
    /// A null row: an empty copy at the end of the copied data, which is in bounds wherever it falls.
    fn null(&mut self, row: u32) {
        self.nulls.push(row);
        self.copied_rows.push(row);
        let end = self.copied_data.len() as u32;
        self.bounds.extend_from_slice(&[end, end]);
    }

    /// Keeps the values of the first `rows` rows.
    fn truncate(&mut self, rows: u32) {
        while let Some(&row) = self.copied_rows.last().filter(|&&row| row >= rows) {
            self.copied_data.truncate(self.bounds[2 * row as usize] as usize);
            self.copied_rows.pop();
        }
        while self.nulls.last().is_some_and(|&row| row >= rows) {
            self.nulls.pop();
        }
        self.bounds.truncate(2 * rows as usize);
    }

    fn take(&mut self, rows: u32) -> SpanColumn {
        let valid = if self.nulls.is_empty() {
            Vec::new()
        } else {
            let mut bits = vec![0xFF; (rows as usize).div_ceil(8)];
            for &row in &self.nulls {
                bits[row as usize / 8] &= !(1 << (row % 8));
            }
            self.nulls.clear();
            bits
        };
        SpanColumn {
            name: self.name.clone(),
            valid,
            values: SpanColumnValues::Spans(SpanValues {
                bounds: take_keeping_capacity(&mut self.bounds),
                // Kept at the size they reached, so that the next call's copies do not grow them again.
                copied_rows: take_keeping_capacity(&mut self.copied_rows),
                copied_data: take_keeping_capacity(&mut self.copied_data),
            }),
        }
    }
}

/// Where a [`SpanParser`] puts its results: a value per column with [`SpanEmitter::span`],
/// [`SpanEmitter::copied`] or [`SpanEmitter::null`], then [`SpanEmitter::end_row`]; refused rows with
/// [`SpanEmitter::reject`]; and, before a call returns, the bytes it holds with [`SpanEmitter::keep`].
/// A row gives each column at most one value; a column it gives none holds null there, and a column added
/// part-way through holds nulls in the rows before.
#[derive(Default)]
pub struct SpanEmitter {
    columns: Vec<SpanColumnBuilder>,
    by_name: HashMap<String, usize>,
    rows: u32,
    /// How many values the current row has been given.
    values_in_row: usize,
    lines: Vec<u64>,
    rejects: Vec<RejectedRow>,
    window: usize,
    keep: usize,
}

impl SpanEmitter {
    /// The length of this call's window: what was kept, then the chunk.
    pub fn window_len(&self) -> usize {
        self.window
    }

    /// How many columns there are.
    pub fn columns(&self) -> usize {
        self.columns.len()
    }

    /// The index of the column `name`, added if there is none yet.
    pub fn column(&mut self, name: &str) -> usize {
        if let Some(&index) = self.by_name.get(name) {
            return index;
        }
        let mut column = SpanColumnBuilder { name: name.to_string(), ..Default::default() };
        for row in 0..self.rows {
            column.null(row);
        }
        self.columns.push(column);
        self.by_name.insert(name.to_string(), self.columns.len() - 1);
        self.columns.len() - 1
    }

    /// The current row's value in `column` is bytes `start..end` of the window, which are UTF-8. The spans
    /// of one column must not overlap or go backwards.
    #[inline]
    pub fn span(&mut self, column: usize, start: usize, end: usize) {
        debug_assert!(
            start <= end && end <= self.window,
            "span {start}..{end} of a window of {}",
            self.window
        );
        self.columns[column].bounds.extend_from_slice(&[start as u32, end as u32]);
        self.values_in_row += 1;
    }

    /// The current row's value in `column` is `text`, which the host is handed a copy of.
    pub fn copied(&mut self, column: usize, text: &str) {
        self.copied_with(column, |data| data.extend_from_slice(text.as_bytes()));
    }

    /// The current row's value in `column` is what `write` appends to the buffer it is handed: text the
    /// parser had to change (unescaped), written where the host is handed it without a copy in between.
    /// It must append UTF-8, and nothing else to the buffer.
    #[inline]
    pub fn copied_with(&mut self, column: usize, write: impl FnOnce(&mut Vec<u8>)) {
        let column = &mut self.columns[column];
        let start = column.copied_data.len() as u32;
        write(&mut column.copied_data);
        column.copied_rows.push(self.rows);
        column.bounds.extend_from_slice(&[start, column.copied_data.len() as u32]);
        self.values_in_row += 1;
    }

    /// The current row has no value in `column`.
    pub fn null(&mut self, column: usize) {
        self.columns[column].null(self.rows);
        self.values_in_row += 1;
    }

    /// Starts a row whose values are given to the columns in order, the first value to column 0: for a
    /// parser whose columns are its records' fields (CSV). Each value then costs less than one given by
    /// column index, which matters where values are a few bytes each.
    #[inline]
    pub fn row_in_order(&mut self) -> RowInOrder<'_> {
        debug_assert_eq!(self.values_in_row, 0, "a row is given its values in order or by column, not both");
        RowInOrder {
            columns: self.columns.iter_mut(),
            row: self.rows,
            window: self.window,
            rows: &mut self.rows,
            lines: &mut self.lines,
        }
    }

    /// Ends the current row, which starts on 1-based line `line` of the input.
    pub fn end_row(&mut self, line: u64) {
        if self.values_in_row < self.columns.len() {
            let filled = 2 * (self.rows as usize + 1);
            for column in &mut self.columns {
                if column.bounds.len() < filled {
                    column.null(self.rows);
                }
            }
        }
        self.values_in_row = 0;
        self.rows += 1;
        self.lines.push(line);
    }

    /// Drops the values given for the current row (a record found bad half-way).
    pub fn cancel_row(&mut self) {
        for column in &mut self.columns {
            column.truncate(self.rows);
        }
        self.values_in_row = 0;
    }

    /// Refuses a row: nothing of it is kept but its line, the reason and up to 1 KiB of its raw bytes.
    pub fn reject(&mut self, line: u64, reason: impl Into<String>, raw: &[u8]) {
        self.rejects.push(RejectedRow { line, reason: reason.into(), raw: raw_text(raw) });
    }

    /// The parser holds on to the last `bytes` of the window: they begin the next call's window.
    pub fn keep(&mut self, bytes: usize) {
        debug_assert!(bytes <= self.window, "keeps {bytes} bytes of a window of {}", self.window);
        self.keep = bytes;
    }

    pub(crate) fn begin(&mut self, chunk: usize) {
        self.window = self.keep + chunk;
        self.keep = 0;
    }

    pub(crate) fn take(&mut self) -> SpanOutput {
        let mut batches = Vec::new();
        if self.rows > 0 {
            let rows = self.rows;
            batches.push(SpanBatch {
                rows,
                columns: self.columns.iter_mut().map(|column| column.take(rows)).collect(),
                lines: take_keeping_capacity(&mut self.lines),
                first_line: 0,
            });
            self.rows = 0;
        }
        SpanOutput { batches, rejects: std::mem::take(&mut self.rejects), keep: self.keep as u32 }
    }

    /// What a parser that failed completed before: handed to the host along with its error.
    fn fail(&mut self, error: FatalError) -> SpanFatalError {
        self.cancel_row();
        SpanFatalError { line: error.line, message: error.message, completed: self.take() }
    }
}

/// A row being given its values column by column in order ([`SpanEmitter::row_in_order`]). It is ended
/// with [`RowInOrder::end_row`]; one dropped before is cancelled by [`SpanEmitter::cancel_row`].
pub struct RowInOrder<'a> {
    /// The columns not yet given a value in this row.
    columns: std::slice::IterMut<'a, SpanColumnBuilder>,
    row: u32,
    window: usize,
    rows: &'a mut u32,
    lines: &'a mut Vec<u64>,
}

impl RowInOrder<'_> {
    /// The next column's value is bytes `start..end` of the window, as [`SpanEmitter::span`].
    #[inline]
    pub fn span(&mut self, start: usize, end: usize) {
        debug_assert!(
            start <= end && end <= self.window,
            "span {start}..{end} of a window of {}",
            self.window
        );
        self.next_column().bounds.extend_from_slice(&[start as u32, end as u32]);
    }

    /// The next column's value is what `write` appends, as [`SpanEmitter::copied_with`].
    #[inline]
    pub fn copied_with(&mut self, write: impl FnOnce(&mut Vec<u8>)) {
        let row = self.row;
        let column = self.next_column();
        let start = column.copied_data.len() as u32;
        write(&mut column.copied_data);
        column.copied_rows.push(row);
        column.bounds.extend_from_slice(&[start, column.copied_data.len() as u32]);
    }

    /// The next column has no value in this row.
    pub fn null(&mut self) {
        let row = self.row;
        self.next_column().null(row);
    }

    /// Ends the row, which starts on 1-based line `line`: the columns not given a value hold null.
    #[inline]
    pub fn end_row(self, line: u64) {
        if self.columns.len() > 0 {
            fill_with_null(self.columns, self.row);
        }
        *self.rows += 1;
        self.lines.push(line);
    }

    #[inline]
    fn next_column(&mut self) -> &mut SpanColumnBuilder {
        self.columns.next().expect("a row in order is given at most one value per column")
    }
}

/// Gives `columns` null in `row`: apart from the inlined path of a row in order given all its values.
#[cold]
fn fill_with_null(columns: std::slice::IterMut<'_, SpanColumnBuilder>, row: u32) {
    for column in columns {
        column.null(row);
    }
}

/// Adapts a [`SpanParser`] to the contract's `typed-parser` resource. Used by
/// [`export_span_parser!`](crate::export_span_parser).
#[doc(hidden)]
pub struct SpanParserResource<P> {
    state: RefCell<(P, SpanEmitter)>,
}

impl<P: SpanParser> GuestFileParser for SpanParserResource<P> {
    fn create(options: Vec<(String, String)>) -> Result<FileParser, SpanFatalError> {
        let mut out = SpanEmitter::default();
        let parser = P::create(Options::new(options)).map_err(|error| out.fail(error))?;
        Ok(FileParser::new(SpanParserResource { state: RefCell::new((parser, out)) }))
    }

    fn feed(&self, chunk: Vec<u8>) -> Result<SpanOutput, SpanFatalError> {
        let (parser, out) = &mut *self.state.borrow_mut();
        out.begin(chunk.len());
        match parser.feed(&chunk, out) {
            Ok(()) => Ok(out.take()),
            Err(error) => Err(out.fail(error)),
        }
    }

    fn finish(&self) -> Result<SpanOutput, SpanFatalError> {
        let (parser, out) = &mut *self.state.borrow_mut();
        out.begin(0);
        match parser.finish(out) {
            Ok(()) => Ok(out.take()),
            Err(error) => Err(out.fail(error)),
        }
    }
}

/// Exports a [`SpanParser`] as the plugin's `typed-format` world (contract 1.4.0), with what the plugin
/// says of itself (`about`), as [`export_parser!`](crate::export_parser) does for a [`Parser`](crate::Parser).
#[rustfmt::skip]
#[macro_export]
macro_rules! export_span_parser {
    ($parser:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct SluiceSpanFormatExport;
            impl $crate::span_bindings::exports::sluice::plugin::typed_parser::Guest for SluiceSpanFormatExport {
                type FileParser = $crate::spans::SpanParserResource<$parser>;
            }
            $crate::span_bindings::export!(SluiceSpanFormatExport with_types_in $crate::span_bindings);
            $crate::export_about!();
        };
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spans(column: &SpanColumn) -> (&[u32], &[u32], &[u8]) {
        let SpanColumnValues::Spans(values) = &column.values else { panic!("spans") };
        (&values.bounds, &values.copied_rows, &values.copied_data)
    }

    #[test]
    fn rows_cross_as_spans_copies_and_nulls_with_what_the_parser_keeps() {
        let mut out = SpanEmitter::default();
        out.begin(10);
        let (a, b) = (out.column("a"), out.column("b"));
        out.span(a, 0, 2);
        out.copied(b, "x\"y");
        out.end_row(2);
        out.span(a, 3, 5);
        out.end_row(3); // `b` left out: null
        out.span(a, 6, 6);
        out.copied_with(b, |data| data.extend_from_slice(b"bad"));
        out.cancel_row();
        out.keep(4);
        let output = out.take();
        assert_eq!(output.keep, 4);
        let batch = &output.batches[0];
        assert_eq!((batch.rows, &batch.lines[..]), (2, &[2, 3][..]));
        assert_eq!(spans(&batch.columns[0]), (&[0, 2, 3, 5][..], &[][..], &[][..]));
        assert!(batch.columns[0].valid.is_empty());
        assert_eq!(spans(&batch.columns[1]), (&[0, 3, 3, 3][..], &[0, 1][..], &b"x\"y"[..]));
        assert_eq!(batch.columns[1].valid, vec![0b1111_1101]);

        // The next window starts with the 4 bytes kept; a column added now is null in the rows before.
        out.begin(6);
        assert_eq!(out.window_len(), 10);
        out.span(a, 0, 1);
        out.end_row(4);
        let c = out.column("c");
        out.span(a, 1, 2);
        out.span(c, 2, 3);
        out.end_row(5);
        let batch = &out.take().batches[0];
        assert_eq!(spans(&batch.columns[2]), (&[0, 0, 2, 3][..], &[0][..], &[][..]));
        assert_eq!(batch.columns[2].valid, vec![0b1111_1110]);
        assert_eq!(spans(&batch.columns[1]), (&[0, 0, 0, 0][..], &[0, 1][..], &[][..]));
    }

    #[test]
    fn a_row_in_order_gives_the_columns_their_values_in_turn_and_the_rest_null() {
        let mut out = SpanEmitter::default();
        out.begin(10);
        let (a, b, c) = (out.column("a"), out.column("b"), out.column("c"));
        let mut row = out.row_in_order();
        row.span(0, 2);
        row.copied_with(|data| data.extend_from_slice(b"q\""));
        row.span(5, 6);
        row.end_row(1);
        let mut row = out.row_in_order();
        row.null();
        row.span(7, 9);
        row.end_row(2); // `c` left out: null
        // A row dropped half-way is cancelled, and a row by column index follows it.
        let mut row = out.row_in_order();
        row.span(9, 10);
        out.cancel_row();
        out.span(b, 9, 10);
        out.end_row(3);
        let batch = &out.take().batches[0];
        assert_eq!((batch.rows, &batch.lines[..]), (3, &[1, 2, 3][..]));
        assert_eq!(spans(&batch.columns[a]), (&[0, 2, 0, 0, 0, 0][..], &[1, 2][..], &[][..]));
        assert_eq!(batch.columns[a].valid, vec![0b1111_1001]);
        assert_eq!(spans(&batch.columns[b]), (&[0, 2, 7, 9, 9, 10][..], &[0][..], &b"q\""[..]));
        assert!(batch.columns[b].valid.is_empty());
        assert_eq!(spans(&batch.columns[c]), (&[5, 6, 0, 0, 0, 0][..], &[1, 2][..], &[][..]));
        assert_eq!(batch.columns[c].valid, vec![0b1111_1001]);
    }
}
