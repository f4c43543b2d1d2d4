//! Reads CSV with csv-core's state machine, for the dialects the block scanner does not handle: an escape
//! character, quotes not doubled, or comment lines.

use crate::scan::{Fields, RawRecord};
use csv_core::{ReadRecordResult, Reader, ReaderBuilder};

/// How much of the raw text of a record that spans chunks is kept for a reject.
const RAW_KEEP: usize = 1024;

pub(crate) struct CoreReader {
    reader: Reader,
    quote: u8,
    /// The quote-parity test for an unterminated quote holds only when quotes are escaped by doubling.
    can_check_quotes: bool,
    comment: Option<u8>,
    /// csv-core writes a record's unquoted fields into `fields` and their end offsets into `ends`.
    fields: Vec<u8>,
    fields_len: usize,
    ends: Vec<usize>,
    ends_len: usize,
    record: RecordStart,
}

/// What is known of the record being read before it completes.
#[derive(Default)]
struct RecordStart {
    /// Whether a byte of the record itself (not a blank or comment line before it) has been seen.
    started: bool,
    in_comment: bool,
    line: u64,
    /// For a record that spans chunks: its first bytes and its count of quote bytes.
    carried: Vec<u8>,
    carried_quotes: u64,
}

impl CoreReader {
    pub(crate) fn new(
        delimiter: u8,
        quote: u8,
        escape: Option<u8>,
        double_quote: bool,
        comment: Option<u8>,
    ) -> Self {
        let reader = ReaderBuilder::new()
            .delimiter(delimiter)
            .quote(quote)
            .escape(escape)
            .double_quote(double_quote)
            .comment(comment)
            .build();
        CoreReader {
            reader,
            quote,
            can_check_quotes: escape.is_none() && double_quote,
            comment,
            fields: vec![0; 64 * 1024],
            fields_len: 0,
            ends: vec![0; 256],
            ends_len: 0,
            record: RecordStart::default(),
        }
    }

    /// Counts `lines` skipped before the first byte the reader sees.
    pub(crate) fn skip_lines(&mut self, lines: u64) {
        self.reader.set_line(self.reader.line() + lines);
    }

    pub(crate) fn feed(&mut self, chunk: &[u8], each: &mut impl FnMut(RawRecord<'_>)) {
        if !chunk.is_empty() {
            self.read(chunk, each);
        }
    }

    pub(crate) fn finish(&mut self, each: &mut impl FnMut(RawRecord<'_>)) {
        self.read(&[], each);
    }

    /// Runs csv-core over `input` (empty at end of file), handing on each completed record.
    fn read(&mut self, input: &[u8], each: &mut impl FnMut(RawRecord<'_>)) {
        let mut pos = 0;
        loop {
            let start = pos;
            let line_before = self.reader.line();
            let (result, consumed, written, ends_written) = self.reader.read_record(
                &input[pos..],
                &mut self.fields[self.fields_len..],
                &mut self.ends[self.ends_len..],
            );
            pos += consumed;
            self.fields_len += written;
            self.ends_len += ends_written;
            let piece = self.record_part(&input[start..pos], line_before);
            match result {
                ReadRecordResult::Record => {
                    let carried;
                    let raw = if self.record.carried.is_empty() {
                        piece
                    } else {
                        self.carry(piece);
                        carried = std::mem::take(&mut self.record.carried);
                        &carried
                    };
                    // Quotes balance in every well-formed record; an odd count in the record that ran into
                    // the end of the file means a quoted field was opened and never closed.
                    let unterminated =
                        input.is_empty() && self.can_check_quotes && self.record.carried_quotes % 2 == 1;
                    let fields = if unterminated {
                        Fields::Unterminated
                    } else {
                        Fields::Unquoted {
                            data: &self.fields[..self.fields_len],
                            ends: &self.ends[..self.ends_len],
                        }
                    };
                    let raw = raw.strip_suffix(b"\n").unwrap_or(raw);
                    let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
                    // csv-core's fields are copies, so nothing here is handed over as a span.
                    each(RawRecord {
                        line: self.record.line,
                        raw,
                        raw_and_after: raw,
                        fields,
                        to_end: None,
                        ascii: false,
                    });
                    self.fields_len = 0;
                    self.ends_len = 0;
                    self.record = RecordStart::default();
                }
                ReadRecordResult::InputEmpty | ReadRecordResult::End => {
                    self.carry(piece);
                    return;
                }
                ReadRecordResult::OutputFull => {
                    self.carry(piece);
                    self.fields.resize(self.fields.len() * 2, 0);
                }
                ReadRecordResult::OutputEndsFull => {
                    self.carry(piece);
                    self.ends.resize(self.ends.len() * 2, 0);
                }
            }
        }
    }

    /// The part of a consumed piece that belongs to the record itself, past any blank or comment lines
    /// before it; notes the line the record starts on.
    fn record_part<'a>(&mut self, piece: &'a [u8], line_before: u64) -> &'a [u8] {
        let record = &mut self.record;
        if record.started {
            return piece;
        }
        let mut skipped = 0;
        for (i, &b) in piece.iter().enumerate() {
            match b {
                b'\n' => {
                    skipped += 1;
                    record.in_comment = false;
                }
                _ if record.in_comment || b == b'\r' => {}
                _ if Some(b) == self.comment => record.in_comment = true,
                _ => {
                    record.started = true;
                    record.line = line_before + skipped;
                    return &piece[i..];
                }
            }
        }
        &[]
    }

    /// Keeps what is needed of a record that continues past this piece. Only such a record can run into
    /// the end of the file, so only its quotes are counted.
    fn carry(&mut self, piece: &[u8]) {
        let record = &mut self.record;
        if self.can_check_quotes {
            record.carried_quotes += piece.iter().filter(|&&b| b == self.quote).count() as u64;
        }
        let keep = RAW_KEEP.saturating_sub(record.carried.len()).min(piece.len());
        record.carried.extend_from_slice(&piece[..keep]);
    }
}
