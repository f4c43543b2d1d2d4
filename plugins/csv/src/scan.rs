//! Finds the records and fields of a CSV stream 64 bytes at a time.
//!
//! For each block of 64 bytes the scanner builds bit masks of the delimiter, `\n`, `\r` and quote bytes
//! (with WebAssembly SIMD where the target has it). A running XOR over the quote mask marks the bytes
//! inside quotes; the delimiters and line ends outside quotes are the field and record ends, found one
//! bit at a time. Nothing is copied until a record is complete, and a typical field costs a few
//! instructions rather than a state-machine step per byte as in csv-core.
//!
//! The masks assume that a quote opens a quoted field only at the start of a field, as RFC 4180 has it.
//! A quote that opens one elsewhere (`5'10",tall`) is found exactly, and that one record is read by
//! csv-core instead, which takes such a quote literally; scanning resumes after it.

use csv_core::{ReadRecordResult, Reader, ReaderBuilder};

/// One record, as the bytes of the file hold it.
pub(crate) struct RawRecord<'a> {
    /// The 1-based line the record starts on.
    pub line: u64,
    /// The record's bytes, without its line end.
    pub raw: &'a [u8],
    /// `raw`, then whatever follows it in the bytes the tokenizer holds: a read of a fixed size that starts
    /// in the record's last field can run past it.
    pub raw_and_after: &'a [u8],
    pub fields: Fields<'a>,
    /// Where `raw` lies in the bytes the tokenizer holds: how many bytes there are from its first byte to
    /// the end of them (the end of the call's window). `None` where the fields are csv-core's copies.
    pub to_end: Option<usize>,
    /// Whether `raw` is known to be ASCII, and so UTF-8 without a check.
    pub ascii: bool,
}

/// The fields of a record.
pub(crate) enum Fields<'a> {
    /// Each field's end offset in `raw` (a delimiter or the end follows it); quoted fields still have
    /// their quotes.
    InRaw(&'a [usize]),
    /// Fields already unquoted by csv-core: `data` holds them one after another, `ends` their ends.
    Unquoted { data: &'a [u8], ends: &'a [usize] },
    /// A quoted field was opened and never closed before the end of the file.
    Unterminated,
}

const BLOCK: usize = 64;

/// How much of a chunk is first joined to a record held from the chunk before. Most records are far
/// shorter, so they end in it, and the rest of the chunk is then scanned where it lies; a record longer
/// than this takes the whole chunk into the buffer.
const JOIN: usize = 4096;

pub(crate) struct Scanner {
    delimiter: u8,
    quote: u8,
    /// How much of a chunk is joined to a held record before the rest is scanned where it lies.
    join: usize,
    /// The record a chunk cut off, held for the next: `buffer[0]` is its first byte.
    buffer: Vec<u8>,
    /// How much of the current record has been scanned, and the state there.
    scanned: usize,
    in_quotes: bool,
    /// Whether the byte before `scanned` ended a field or was a quote, so that a quote at `scanned` may
    /// open a quoted field (or be the second of a doubled quote).
    open_allowed: bool,
    newlines_before_scanned: u64,
    /// One past the last byte of the current record scanned so far that is not ASCII, from the record's
    /// start; 0 where there is none.
    non_ascii_end: usize,
    /// Ends of the current record's fields found so far, relative to `buffer[0]`.
    ends: Vec<usize>,
    record_line: u64,
    /// Reads the one record with a stray quote, when there is one.
    fallback: Reader,
    /// How far csv-core got through such a record that the data so far did not complete: bytes of the
    /// record consumed, bytes and ends written. It goes on from there, so a long record is read once.
    fallback_progress: Option<(usize, usize, usize)>,
    fallback_fields: Vec<u8>,
    fallback_ends: Vec<usize>,
}

impl Scanner {
    pub(crate) fn new(delimiter: u8, quote: u8) -> Self {
        let first_line = 1;
        Scanner {
            delimiter,
            quote,
            join: JOIN,
            buffer: Vec::new(),
            scanned: 0,
            in_quotes: false,
            open_allowed: true,
            newlines_before_scanned: first_line - 1,
            non_ascii_end: 0,
            ends: Vec::new(),
            record_line: first_line,
            fallback: ReaderBuilder::new().delimiter(delimiter).quote(quote).build(),
            fallback_progress: None,
            fallback_fields: vec![0; 1024],
            fallback_ends: vec![0; 64],
        }
    }

    /// How many bytes it holds: the start of a record the input so far has not completed.
    pub(crate) fn held(&self) -> usize {
        self.buffer.len()
    }

    /// Counts `lines` skipped before the first byte the scanner sees.
    pub(crate) fn skip_lines(&mut self, lines: u64) {
        self.record_line += lines;
        self.newlines_before_scanned += lines;
    }

    /// Takes the next chunk, handing each record it completes to `each`. Records are read where they lie in
    /// the chunk; only a record that goes on past the chunk is copied, to be held for the next.
    pub(crate) fn feed(&mut self, chunk: &[u8], each: &mut impl FnMut(RawRecord<'_>)) {
        let mut start = 0;
        if !self.buffer.is_empty() {
            // The held record is completed in the buffer, from the start of the chunk.
            let held = self.buffer.len();
            let joined = chunk.len().min(self.join);
            self.buffer.extend_from_slice(&chunk[..joined]);
            let consumed = self.scan_buffer(chunk.len() - joined, false, each);
            if joined == chunk.len() {
                return;
            }
            if consumed < held {
                // It goes on past what was joined: it takes the rest of the chunk too.
                self.buffer.extend_from_slice(&chunk[joined..]);
                self.scan_buffer(0, false, each);
                return;
            }
            // What the buffer holds now is the start of a record at `consumed - held` in the chunk, with the
            // same bytes of it scanned.
            start = consumed - held;
            self.buffer.clear();
        }
        let consumed = self.scan(chunk, start, 0, false, each);
        self.buffer.extend_from_slice(&chunk[consumed..]);
    }

    /// The input has ended: hands out the last record, if it had no line end.
    pub(crate) fn finish(&mut self, each: &mut impl FnMut(RawRecord<'_>)) {
        self.scan_buffer(0, true, each);
        if self.buffer.is_empty() {
            return;
        }
        let fields = if self.in_quotes {
            Fields::Unterminated
        } else {
            self.ends.push(self.buffer.len());
            Fields::InRaw(&self.ends)
        };
        let (to_end, ascii) = (Some(self.buffer.len()), self.non_ascii_end == 0);
        let raw = &self.buffer;
        each(RawRecord { line: self.record_line, raw, raw_and_after: raw, fields, to_end, ascii });
        self.buffer.clear();
        self.non_ascii_end = 0;
    }

    /// Scans the buffer, which `beyond` bytes not yet in it follow in the window; keeps what it did not
    /// consume, and returns how much it consumed.
    fn scan_buffer(&mut self, beyond: usize, at_end: bool, each: &mut impl FnMut(RawRecord<'_>)) -> usize {
        let buffer = std::mem::take(&mut self.buffer);
        let consumed = self.scan(&buffer, 0, beyond, at_end, each);
        self.buffer = buffer;
        self.buffer.drain(..consumed);
        consumed
    }

    /// Scans `data` from the current record, which starts at `record_start` (its first `self.scanned`
    /// bytes already scanned), handing out the records it completes; `beyond` bytes follow `data` in the
    /// window. Returns where the record it did not complete starts.
    fn scan(
        &mut self,
        data: &[u8],
        mut record_start: usize,
        beyond: usize,
        at_end: bool,
        each: &mut impl FnMut(RawRecord<'_>),
    ) -> usize {
        let mut pos = record_start + self.scanned;
        let mut non_ascii_end = if self.non_ascii_end == 0 { 0 } else { record_start + self.non_ascii_end };
        if self.fallback_progress.is_some() {
            // csv-core is part-way through the record at `record_start`.
            let Some(next) = self.read_with_fallback(data, record_start, at_end, each) else {
                return record_start;
            };
            (record_start, pos) = (next, next);
            self.in_quotes = false;
            self.open_allowed = true;
        }
        'blocks: while pos < data.len() && (at_end || pos + BLOCK <= data.len()) {
            let valid = (data.len() - pos).min(BLOCK);
            let masks = Masks::of(&data[pos..pos + valid], self.delimiter, self.quote);
            if masks.non_ascii != 0 {
                non_ascii_end = pos + BLOCK - masks.non_ascii.leading_zeros() as usize;
            }
            let inside = prefix_xor(masks.quotes) ^ if self.in_quotes { !0 } else { 0 };
            let ends = masks.separators & !inside;
            // A quote that opens a quoted region must start a field, or follow a quote (a doubled quote).
            let openers = masks.quotes & inside & !(inside << 1 | self.in_quotes as u64);
            let open_allowed = (ends | masks.quotes) << 1 | self.open_allowed as u64;
            if openers & !open_allowed != 0 {
                match self.read_with_fallback(data, record_start, at_end, each) {
                    Some(next) => {
                        record_start = next;
                        pos = next;
                        self.in_quotes = false;
                        self.open_allowed = true;
                        continue 'blocks;
                    }
                    None => {
                        // The record goes on past the data so far: it is read again when more comes.
                        pos = record_start;
                        self.newlines_before_scanned = self.record_line - 1;
                        self.ends.clear();
                        break 'blocks;
                    }
                }
            }
            let mut remaining = ends;
            while remaining != 0 {
                let bit = remaining.trailing_zeros() as usize;
                remaining &= remaining - 1;
                let at = pos + bit;
                self.ends.push(at - record_start);
                if masks.line_ends >> bit & 1 == 0 {
                    continue;
                }
                let newlines_before =
                    self.newlines_before_scanned + (masks.newlines & ((1u64 << bit) - 1)).count_ones() as u64;
                // An empty line (and the `\n` of a `\r\n`) holds no record.
                if at > record_start || self.ends.len() > 1 {
                    each(RawRecord {
                        line: self.record_line,
                        raw: &data[record_start..at],
                        raw_and_after: &data[record_start..],
                        fields: Fields::InRaw(&self.ends),
                        to_end: Some(data.len() - record_start + beyond),
                        // A record before the last non-ASCII byte of its block is checked all the same.
                        ascii: non_ascii_end <= record_start,
                    });
                }
                self.ends.clear();
                record_start = at + 1;
                self.record_line = newlines_before + 1 + (data[at] == b'\n') as u64;
            }
            self.newlines_before_scanned += masks.newlines.count_ones() as u64;
            self.in_quotes = inside >> (valid - 1) & 1 == 1;
            self.open_allowed = (ends | masks.quotes) >> (valid - 1) & 1 == 1;
            pos += valid;
        }
        // Field ends are kept relative to the record's start, so they hold wherever its bytes are next.
        self.scanned = pos - record_start;
        self.non_ascii_end = non_ascii_end.saturating_sub(record_start);
        record_start
    }

    /// Reads the record at `start` with csv-core; returns where the next record starts, or `None` when the
    /// record is not complete in the data so far.
    fn read_with_fallback(
        &mut self,
        data: &[u8],
        start: usize,
        at_end: bool,
        each: &mut impl FnMut(RawRecord<'_>),
    ) -> Option<usize> {
        let (mut pos, mut written, mut ends) = match self.fallback_progress.take() {
            Some((consumed, written, ends)) => (start + consumed, written, ends),
            None => {
                self.fallback.reset();
                (start, 0, 0)
            }
        };
        loop {
            let input = if pos < data.len() { &data[pos..] } else { &[][..] };
            if input.is_empty() && !at_end {
                self.fallback_progress = Some((pos - start, written, ends));
                return None;
            }
            let (result, consumed, out, ends_out) = self.fallback.read_record(
                input,
                &mut self.fallback_fields[written..],
                &mut self.fallback_ends[ends..],
            );
            pos += consumed;
            written += out;
            ends += ends_out;
            match result {
                ReadRecordResult::OutputFull => {
                    self.fallback_fields.resize(self.fallback_fields.len() * 2, 0)
                }
                ReadRecordResult::OutputEndsFull => {
                    self.fallback_ends.resize(self.fallback_ends.len() * 2, 0)
                }
                ReadRecordResult::InputEmpty => {}
                ReadRecordResult::Record | ReadRecordResult::End => break,
            }
        }
        // csv-core skips blank lines (such as the `\n` left of a `\r\n`) before the record; they count.
        let consumed = &data[start..pos];
        let is_line_end = |b: &u8| *b == b'\n' || *b == b'\r';
        let record_start = consumed.iter().position(|b| !is_line_end(b)).unwrap_or(consumed.len());
        let record_end = consumed.iter().rposition(|b| !is_line_end(b)).map_or(record_start, |i| i + 1);
        let count_newlines = |bytes: &[u8]| bytes.iter().filter(|&&b| b == b'\n').count() as u64;
        let line = self.record_line + count_newlines(&consumed[..record_start]);
        if ends > 0 {
            each(RawRecord {
                line,
                raw: &consumed[record_start..record_end],
                raw_and_after: &consumed[record_start..record_end],
                fields: Fields::Unquoted {
                    data: &self.fallback_fields[..written],
                    ends: &self.fallback_ends[..ends],
                },
                // csv-core's fields are copies, so nothing here is handed over as a span.
                to_end: None,
                ascii: false,
            });
        }
        self.ends.clear();
        self.record_line = line + count_newlines(&consumed[record_start..]);
        self.newlines_before_scanned = self.record_line - 1;
        Some(pos)
    }
}

/// Bit `i` of each mask is set where byte `i` of the block is one of its characters (or, for `non_ascii`,
/// a byte of 0x80 or more).
struct Masks {
    /// The delimiter, `\n` and `\r`: where a field may end.
    separators: u64,
    /// `\n` and `\r`: where a record may end.
    line_ends: u64,
    newlines: u64,
    quotes: u64,
    non_ascii: u64,
}

impl Masks {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    fn of(block: &[u8], delimiter: u8, quote: u8) -> Masks {
        use core::arch::wasm32::{u8x16_bitmask, u8x16_eq, u8x16_splat, v128, v128_load, v128_or};
        if block.len() < BLOCK {
            let mut padded = [0u8; BLOCK];
            padded[..block.len()].copy_from_slice(block);
            let masks = Self::of(&padded, delimiter, quote);
            let valid = (1u64 << block.len()) - 1;
            return Masks {
                separators: masks.separators & valid,
                line_ends: masks.line_ends & valid,
                newlines: masks.newlines & valid,
                quotes: masks.quotes & valid,
                non_ascii: masks.non_ascii & valid,
            };
        }
        let lanes: [v128; 4] = core::array::from_fn(|i| {
            // SAFETY: `block` holds 64 bytes, so each 16-byte load at 16 * i is in bounds; `v128_load`
            // needs no alignment.
            unsafe { v128_load(block.as_ptr().add(16 * i) as *const v128) }
        });
        // Characters are compared a lane at a time and combined before the (costlier) bitmasks are taken.
        let (delimiter, quote) = (u8x16_splat(delimiter), u8x16_splat(quote));
        let (newline, carriage_return) = (u8x16_splat(b'\n'), u8x16_splat(b'\r'));
        let mut masks = Masks { separators: 0, line_ends: 0, newlines: 0, quotes: 0, non_ascii: 0 };
        for (i, lane) in lanes.iter().enumerate() {
            let newlines = u8x16_eq(*lane, newline);
            let line_ends = v128_or(newlines, u8x16_eq(*lane, carriage_return));
            let separators = v128_or(line_ends, u8x16_eq(*lane, delimiter));
            let bits = |vector| (u8x16_bitmask(vector) as u64) << (16 * i);
            masks.separators |= bits(separators);
            masks.line_ends |= bits(line_ends);
            masks.newlines |= bits(newlines);
            masks.quotes |= bits(u8x16_eq(*lane, quote));
        }
        // The bitmask of a lane is the top bit of each of its bytes: set exactly where a byte is not ASCII.
        // Most blocks have none, which one bitmask of all four lanes together shows.
        let any = lanes.iter().fold(u8x16_splat(0), |any, lane| v128_or(any, *lane));
        if u8x16_bitmask(any) != 0 {
            masks.non_ascii = lanes
                .iter()
                .enumerate()
                .fold(0, |mask, (i, lane)| mask | (u8x16_bitmask(*lane) as u64) << (16 * i));
        }
        masks
    }

    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    fn of(block: &[u8], delimiter: u8, quote: u8) -> Masks {
        let mut masks = Masks { separators: 0, line_ends: 0, newlines: 0, quotes: 0, non_ascii: 0 };
        for (i, &b) in block.iter().enumerate() {
            let bit = 1u64 << i;
            if !b.is_ascii() {
                masks.non_ascii |= bit;
            }
            match b {
                _ if b == delimiter => masks.separators |= bit,
                b'\n' => {
                    masks.separators |= bit;
                    masks.line_ends |= bit;
                    masks.newlines |= bit;
                }
                b'\r' => {
                    masks.separators |= bit;
                    masks.line_ends |= bit;
                }
                _ if b == quote => masks.quotes |= bit,
                _ => {}
            }
        }
        masks
    }
}

/// Bit `i` of the result is the XOR of bits `0..=i`: set from an opening quote up to its closing quote.
fn prefix_xor(mut bits: u64) -> u64 {
    for shift in [1, 2, 4, 8, 16, 32] {
        bits ^= bits << shift;
    }
    bits
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record as the scanner hands it out: its line, where it starts in the input, its bytes and its
    /// fields' ends (or csv-core's unquoted fields).
    type Seen = (u64, Option<usize>, Vec<u8>, Vec<usize>, Vec<u8>);

    /// Feeds `input` in chunks of `chunk` bytes to a scanner that joins `join` bytes to a held record, and
    /// places every record in the input by its distance from the end of the window it was handed out in.
    fn records(input: &[u8], chunk: usize, join: usize) -> Vec<Seen> {
        let mut scanner = Scanner::new(b',', b'"');
        scanner.join = join;
        let mut seen = Vec::new();
        let mut fed = 0;
        let mut keep = |record: RawRecord<'_>, window_end: usize| {
            let at = record.to_end.map(|to_end| window_end - to_end);
            if let Some(at) = at {
                assert_eq!(&input[at..at + record.raw.len()], record.raw, "record on line {}", record.line);
            }
            let (ends, data) = match record.fields {
                Fields::InRaw(ends) => (ends.to_vec(), Vec::new()),
                Fields::Unquoted { data, ends } => (ends.to_vec(), data.to_vec()),
                Fields::Unterminated => (Vec::new(), Vec::new()),
            };
            seen.push((record.line, at, record.raw.to_vec(), ends, data));
        };
        for piece in input.chunks(chunk) {
            fed += piece.len();
            scanner.feed(piece, &mut |record| keep(record, fed));
        }
        scanner.finish(&mut |record| keep(record, fed));
        seen
    }

    #[test]
    fn records_are_the_same_read_in_place_or_joined_to_a_held_one_whatever_the_chunks() {
        let mut input = Vec::new();
        for i in 0..200 {
            match i % 5 {
                0 => input.extend_from_slice(format!("{i},plain,Zürich\r\n").as_bytes()),
                1 => input.extend_from_slice(format!("{i},\"quoted, \"\"twice\"\"\",x\n").as_bytes()),
                2 => input.extend_from_slice(format!("{i},\"a\nlong {}\",y\n", "z".repeat(i)).as_bytes()),
                // A stray quote: the record is read by csv-core.
                3 => input.extend_from_slice(format!("{i},5'10\",tall\n").as_bytes()),
                _ => input.extend_from_slice(b"\n"),
            }
        }
        input.extend_from_slice(b"last,no,line end");
        let whole = records(&input, input.len(), JOIN);
        assert_eq!(whole.len(), 161);
        for chunk in [1, 3, 64, 100, 1000, 4096] {
            for join in [1, 10, 64, 500, JOIN] {
                assert_eq!(records(&input, chunk, join), whole, "chunks of {chunk}, joining {join}");
            }
        }
    }
}
