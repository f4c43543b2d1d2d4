//! The bundled `csv` format plugin (and `tsv`, which the host runs as this plugin with a tab delimiter).
//!
//! Options (all optional):
//! - `delimiter` (`,`), `quote` (`"`), `escape` (none: a quote inside a quoted field is doubled),
//!   `double_quote` (`true`), `comment` (none: a line starting with it is skipped);
//! - `header` (`true`): the first row names the columns; `columns`: the names to use instead (a list);
//!   without either, columns are named `column_1`, `column_2`, ...;
//! - `skip_rows` (`0`): lines to skip before the header (a preamble);
//! - `trim` (`false`): strip spaces and tabs around every field and name;
//! - `null_values` (none): field texts that stand for null, e.g. `["", "NA"]`;
//! - `ragged_rows` (`reject`): a row with fewer fields than there are columns is rejected with its line,
//!   or with `pad` filled up with nulls. A row with more fields is always rejected: a field cannot be
//!   placed without guessing, and a guess would shift values into the wrong columns.
//!
//! Input is UTF-8 with or without a byte-order mark, with LF or CRLF line ends; quoted fields may hold
//! delimiters, quotes and newlines.

use csv_core::{ReadRecordResult, Reader, ReaderBuilder};
use sluice_plugin_sdk::{Emitter, FatalError, Options, Parser, Value, export_parser, fatal};

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";
/// How much of a rejected row's raw text is kept (the SDK cuts it to this too).
const RAW_KEEP: usize = 1024;

struct CsvParser {
    reader: Reader,
    quote: u8,
    /// The quote-parity test for an unterminated quote holds only when quotes are escaped by doubling.
    can_check_quotes: bool,
    comment: Option<u8>,
    trim: bool,
    null_values: Vec<String>,
    pad_short_rows: bool,

    /// Bytes of a possible byte-order mark seen so far at the start of the file.
    bom_prefix: Vec<u8>,
    bom_done: bool,
    lines_to_skip: u64,
    header_pending: bool,
    /// Column names given by option, or read from the header.
    names: Option<Vec<String>>,
    /// The batch column of each field position.
    column_index: Vec<usize>,

    /// csv-core writes a record's unescaped fields into `fields` and their end offsets into `ends`.
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
    /// The 1-based line the record starts on.
    line: u64,
    /// For a record that spans chunks: its first bytes (for a reject) and its count of quote bytes.
    carried: Vec<u8>,
    carried_quotes: u64,
}

impl Parser for CsvParser {
    fn create(mut options: Options) -> Result<Self, FatalError> {
        let delimiter = options.ascii_char("delimiter")?.unwrap_or(b',');
        let quote = options.ascii_char("quote")?.unwrap_or(b'"');
        let escape = options.ascii_char("escape")?;
        let double_quote = options.bool("double_quote", true)?;
        let comment = options.ascii_char("comment")?;
        let header = options.bool("header", true)?;
        let names = options.list("columns")?;
        let lines_to_skip = options.uint("skip_rows", 0)?;
        let trim = options.bool("trim", false)?;
        let null_values = options.list("null_values")?.unwrap_or_default();
        let pad_short_rows = match options.get("ragged_rows").as_deref() {
            None | Some("reject") => false,
            Some("pad") => true,
            Some(other) => {
                return Err(fatal(0, format!("option `ragged_rows` is `{other}`; expected reject or pad")));
            }
        };
        options.finish()?;
        if let Some(names) = &names
            && let Some(duplicate) = names.iter().enumerate().find(|(i, n)| names[..*i].contains(n))
        {
            return Err(fatal(0, format!("option `columns` names `{}` twice", duplicate.1)));
        }
        let reader = ReaderBuilder::new()
            .delimiter(delimiter)
            .quote(quote)
            .escape(escape)
            .double_quote(double_quote)
            .comment(comment)
            .build();
        Ok(CsvParser {
            reader,
            quote,
            can_check_quotes: escape.is_none() && double_quote,
            comment,
            trim,
            null_values,
            pad_short_rows,
            bom_prefix: Vec::new(),
            bom_done: false,
            lines_to_skip,
            header_pending: header,
            names,
            column_index: Vec::new(),
            fields: vec![0; 64 * 1024],
            fields_len: 0,
            ends: vec![0; 256],
            ends_len: 0,
            record: RecordStart::default(),
        })
    }

    fn feed(&mut self, chunk: &[u8], out: &mut Emitter) -> Result<(), FatalError> {
        let chunk = self.strip_bom(chunk);
        let chunk = self.skip_preamble(&chunk);
        if !chunk.is_empty() {
            self.read(chunk, out);
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Emitter) -> Result<(), FatalError> {
        if !self.bom_done {
            // A file shorter than a byte-order mark: whatever was held back is data.
            let held = std::mem::take(&mut self.bom_prefix);
            self.bom_done = true;
            let held = self.skip_preamble(&held).to_vec();
            self.read(&held, out);
        }
        self.read(&[], out);
        Ok(())
    }
}

impl CsvParser {
    /// Drops a UTF-8 byte-order mark at the start of the file, even when a chunk cuts it in two.
    fn strip_bom<'a>(&mut self, chunk: &'a [u8]) -> std::borrow::Cow<'a, [u8]> {
        if self.bom_done {
            return chunk.into();
        }
        self.bom_prefix.extend_from_slice(chunk);
        if self.bom_prefix.len() < UTF8_BOM.len() && UTF8_BOM.starts_with(&self.bom_prefix) {
            return Vec::new().into();
        }
        self.bom_done = true;
        let held = std::mem::take(&mut self.bom_prefix);
        match held.strip_prefix(UTF8_BOM) {
            Some(rest) => rest.to_vec().into(),
            None => held.into(),
        }
    }

    /// Skips the `skip_rows` lines of preamble; they count toward line numbers.
    fn skip_preamble<'a>(&mut self, mut chunk: &'a [u8]) -> &'a [u8] {
        while self.lines_to_skip > 0 {
            let Some(end) = chunk.iter().position(|&b| b == b'\n') else { return &[] };
            chunk = &chunk[end + 1..];
            self.reader.set_line(self.reader.line() + 1);
            self.lines_to_skip -= 1;
        }
        chunk
    }

    /// Runs csv-core over `input` (empty at end of file), handling each completed record.
    fn read(&mut self, input: &[u8], out: &mut Emitter) {
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
                    self.on_record(input.is_empty(), raw, out);
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

    fn on_record(&mut self, at_end_of_file: bool, raw: &[u8], out: &mut Emitter) {
        let line = self.record.line;
        // Quotes balance in every well-formed record; an odd count in the record that ran into the end of
        // the file means a quoted field was opened and never closed.
        if at_end_of_file && self.can_check_quotes && self.record.carried_quotes % 2 == 1 {
            let reason = format!("unterminated quoted field: the record starting on line {line} runs to the end of the file");
            out.reject(line, reason, raw);
            return;
        }
        if self.header_pending {
            self.header_pending = false;
            let header: Vec<String> = (0..self.ends_len).map(|i| self.header_name(i)).collect();
            self.set_columns(self.names.clone().unwrap_or_else(|| unique_names(header)), out);
            return;
        }
        if self.column_index.is_empty() {
            let names = self.names.clone();
            self.set_columns(names.unwrap_or_else(|| (1..=self.ends_len).map(|i| format!("column_{i}")).collect()), out);
        }
        let expected = self.column_index.len();
        let found = self.ends_len;
        if found > expected || (found < expected && !self.pad_short_rows) {
            out.reject(line, format!("expected {expected} fields, found {found}"), raw);
            return;
        }
        // One UTF-8 check for the whole record; a field is then valid unless its bounds split a character.
        let text = std::str::from_utf8(&self.fields[..self.fields_len]).ok();
        let mut start = 0;
        for i in 0..found {
            let end = self.ends[i];
            let Some(mut field) = text.and_then(|text| text.get(start..end)) else {
                out.batch().cancel_row();
                let bad = (0..found).find(|&j| std::str::from_utf8(self.field(j)).is_err()).unwrap_or(i);
                let name = &self.names.as_ref().expect("columns are set before data rows")[bad];
                out.reject(line, format!("invalid UTF-8 in column `{name}`"), raw);
                return;
            };
            start = end;
            if self.trim {
                field = field.trim_matches([' ', '\t']);
            }
            let value = if self.null_values.iter().any(|null| null == field) {
                Value::Null
            } else {
                Value::Text(field)
            };
            out.batch().push(self.column_index[i], value);
        }
        out.end_row(line);
    }

    fn field(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.fields[start..self.ends[i]]
    }

    fn header_name(&self, i: usize) -> String {
        let name = String::from_utf8_lossy(self.field(i));
        let name = if self.trim { name.trim_matches([' ', '\t']) } else { &name };
        if name.is_empty() { format!("column_{}", i + 1) } else { name.to_string() }
    }

    fn set_columns(&mut self, names: Vec<String>, out: &mut Emitter) {
        self.column_index = names.iter().map(|name| out.batch().column(name)).collect();
        self.names = Some(names);
    }
}

/// Makes repeated header names unique (`id`, `id_2`, ...), so no column silently overwrites another.
fn unique_names(header: Vec<String>) -> Vec<String> {
    let mut names: Vec<String> = Vec::with_capacity(header.len());
    for name in header {
        let mut candidate = name.clone();
        let mut n = 1;
        while names.contains(&candidate) {
            n += 1;
            candidate = format!("{name}_{n}");
        }
        names.push(candidate);
    }
    names
}

export_parser!(CsvParser);
