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
//!
//! The plugin implements contract 1.4.0's `typed-format` world: a field that is a run of the input (any
//! field but one with doubled quotes, or one read by csv-core) crosses to the host as its start and end in
//! the bytes the host fed it, not as a copy.

mod core_reader;
mod quoted;
mod scan;

use core_reader::CoreReader;
use quoted::{Value, unescape_into, value_of};
use scan::{Fields, RawRecord, Scanner};
use sluice_plugin_sdk::{FatalError, Options, SpanEmitter, SpanParser, export_span_parser, fatal};

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

struct CsvParser {
    tokenizer: Tokenizer,
    records: Records,
    /// Bytes of a possible byte-order mark seen so far at the start of the file.
    bom_prefix: Vec<u8>,
    bom_done: bool,
    lines_to_skip: u64,
}

/// Splits the input into records: the block scanner for the common dialect, csv-core for the others.
enum Tokenizer {
    Scan(Scanner),
    Core(CoreReader),
}

impl Tokenizer {
    fn feed(&mut self, chunk: &[u8], each: &mut impl FnMut(RawRecord<'_>)) {
        match self {
            Tokenizer::Scan(scanner) => scanner.feed(chunk, each),
            Tokenizer::Core(reader) => reader.feed(chunk, each),
        }
    }

    fn finish(&mut self, each: &mut impl FnMut(RawRecord<'_>)) {
        match self {
            Tokenizer::Scan(scanner) => scanner.finish(each),
            Tokenizer::Core(reader) => reader.finish(each),
        }
    }

    /// How many bytes it holds of a record not yet complete, where they are the end of the window.
    fn held(&self) -> usize {
        match self {
            Tokenizer::Scan(scanner) => scanner.held(),
            // csv-core's records are handed over as copies, so nothing it holds is referred to.
            Tokenizer::Core(_) => 0,
        }
    }

    /// Counts `lines` of preamble skipped before the first byte the tokenizer sees.
    fn skip_lines(&mut self, lines: u64) {
        match self {
            Tokenizer::Scan(scanner) => scanner.skip_lines(lines),
            Tokenizer::Core(reader) => reader.skip_lines(lines),
        }
    }
}

/// Turns records into rows: the header, ragged rows, UTF-8, trimming and null values.
struct Records {
    quote: u8,
    trim: bool,
    null_values: Vec<String>,
    /// Whether trimming or null values need to see every value.
    looks_at_values: bool,
    pad_short_rows: bool,
    header_pending: bool,
    /// Column names given by option, or read from the header; the batch's columns, in this order, so
    /// that field `i` of a record is column `i`.
    names: Option<Vec<String>>,
    /// Where a field with doubled quotes is unquoted, when its value is looked at.
    scratch: Vec<u8>,
    /// An error found inside a tokenizer callback, returned when the call ends.
    failed: Option<FatalError>,
}

impl SpanParser for CsvParser {
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
        let tokenizer = if escape.is_none() && double_quote && comment.is_none() {
            Tokenizer::Scan(Scanner::new(delimiter, quote))
        } else {
            Tokenizer::Core(CoreReader::new(delimiter, quote, escape, double_quote, comment))
        };
        Ok(CsvParser {
            tokenizer,
            records: Records {
                quote,
                trim,
                looks_at_values: trim || !null_values.is_empty(),
                null_values,
                pad_short_rows,
                header_pending: header,
                names,
                scratch: Vec::new(),
                failed: None,
            },
            bom_prefix: Vec::new(),
            bom_done: false,
            lines_to_skip,
        })
    }

    fn feed(&mut self, chunk: &[u8], out: &mut SpanEmitter) -> Result<(), FatalError> {
        let chunk = self.strip_bom(chunk);
        let chunk = self.skip_preamble(&chunk);
        let records = &mut self.records;
        self.tokenizer.feed(chunk, &mut |record| records.on_record(record, out));
        // What the tokenizer holds, and the start of a byte-order mark held back, begin the next window.
        out.keep(self.tokenizer.held() + self.bom_prefix.len());
        self.records.failed.take().map_or(Ok(()), Err)
    }

    fn finish(&mut self, out: &mut SpanEmitter) -> Result<(), FatalError> {
        if !self.bom_done {
            // A file shorter than a byte-order mark: whatever was held back is data.
            self.bom_done = true;
            let held = std::mem::take(&mut self.bom_prefix);
            self.feed(&held, out)?;
        }
        let records = &mut self.records;
        self.tokenizer.finish(&mut |record| records.on_record(record, out));
        self.records.failed.take().map_or(Ok(()), Err)
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
            self.lines_to_skip -= 1;
            self.tokenizer.skip_lines(1);
        }
        chunk
    }
}

impl Records {
    /// Takes a record. Most are data rows of ASCII in the window with as many fields as there are columns,
    /// whose values need not be looked at: they are handed over here, inlined into the scanner's loop, and
    /// every other record (the header, a reject, one to check or change) goes to [`Records::on_other_record`].
    #[inline(always)]
    fn on_record(&mut self, record: RawRecord<'_>, out: &mut SpanEmitter) {
        if let (Fields::InRaw(ends), Some(to_end), true) = (&record.fields, record.to_end, record.ascii)
            && !self.looks_at_values
            && !self.header_pending
            && ends.len() == out.columns()
        {
            let raw_at = out.window_len() - to_end;
            self.hand_over(&record, ends, raw_at, out);
        } else {
            self.on_other_record(record, out);
        }
    }

    #[inline(never)]
    fn on_other_record(&mut self, record: RawRecord<'_>, out: &mut SpanEmitter) {
        let line = record.line;
        let (bytes, ends, in_raw) = match record.fields {
            Fields::Unterminated => {
                let reason = format!(
                    "unterminated quoted field: the record starting on line {line} runs to the end of the file"
                );
                out.reject(line, reason, record.raw);
                return;
            }
            Fields::InRaw(ends) => (record.raw, ends, true),
            Fields::Unquoted { data, ends } => (data, ends, false),
        };
        // One UTF-8 check for the whole record, where the scanner saw a byte that is not ASCII; a field is
        // then valid unless its bounds split a character (which only csv-core's unquoted output can do, and
        // only for invalid input).
        let text = if record.ascii && in_raw {
            // SAFETY: the scanner found no byte of 0x80 or more in `raw` (which `bytes` is), so it is ASCII,
            // which is UTF-8.
            Some(unsafe { std::str::from_utf8_unchecked(bytes) })
        } else {
            std::str::from_utf8(bytes).ok()
        };
        // Where `raw` starts in the call's window, for fields handed over as spans of it.
        let raw_at = record.to_end.map(|to_end| out.window_len() - to_end);
        // Fields in the raw record are separated by a delimiter byte; unquoted ones lie end to end.
        let separator = usize::from(in_raw);
        let bounds = |i: usize| if i == 0 { 0 } else { ends[i - 1] + separator }..ends[i];
        // Field `i` of the record, as the tokenizer left it. `None`: not valid UTF-8.
        let field = |i: usize| text.and_then(|text| text.get(bounds(i)));
        if self.header_pending {
            self.header_pending = false;
            let Some(header) = (0..ends.len())
                .map(|i| field(i).map(|f| unquote(&mut self.scratch, self.quote, f, in_raw).to_string()))
                .collect::<Option<Vec<_>>>()
            else {
                self.failed = Some(fatal(line, "the header row is not valid UTF-8"));
                return;
            };
            let header = header.into_iter().enumerate().map(|(i, name)| self.column_name(i, &name)).collect();
            self.set_columns(self.names.clone().unwrap_or_else(|| unique_names(header)), out);
            return;
        }
        if out.columns() == 0 {
            let names = self.names.clone();
            self.set_columns(
                names.unwrap_or_else(|| (1..=ends.len()).map(|i| format!("column_{i}")).collect()),
                out,
            );
        }
        let expected = out.columns();
        let found = ends.len();
        if found > expected || (found < expected && !self.pad_short_rows) {
            out.reject(line, format!("expected {expected} fields, found {found}"), record.raw);
            return;
        }
        let Some(text) = text else {
            let bad = (0..found).find(|&j| std::str::from_utf8(&bytes[bounds(j)]).is_err()).unwrap_or(0);
            self.reject_invalid_utf8(line, bad, record.raw, out);
            return;
        };
        if let Some(raw_at) = raw_at
            && !self.looks_at_values
        {
            self.hand_over(&record, ends, raw_at, out);
            return;
        }
        let mut row = out.row_in_order();
        let mut start = 0;
        for (i, &end) in ends.iter().enumerate() {
            let field_start = start;
            start = end + separator;
            let Some(raw_field) = text.get(field_start..end) else {
                out.cancel_row();
                self.reject_invalid_utf8(line, i, record.raw, out);
                return;
            };
            let mut value = unquote(&mut self.scratch, self.quote, raw_field, in_raw);
            if self.trim {
                value = value.trim_matches([' ', '\t']);
            }
            if self.null_values.iter().any(|null| null == value) {
                row.null();
                continue;
            }
            // A value still in the record's bytes is a span of the window; an unquoted copy is copied.
            let offset = (value.as_ptr() as usize).wrapping_sub(record.raw.as_ptr() as usize);
            match raw_at {
                Some(raw_at) if offset + value.len() <= record.raw.len() => {
                    row.span(raw_at + offset, raw_at + offset + value.len())
                }
                _ => row.copied_with(|data| data.extend_from_slice(value.as_bytes())),
            }
        }
        row.end_row(line);
    }

    /// Hands over the fields of a record that lies in the window at `raw_at` and whose values need not be
    /// looked at (no trimming, no null values): a field as a span of the window, a quoted one without its
    /// quotes, and only one with a doubled quote (or text after its closing quote) unescaped into a copy.
    /// (A field of the record starts and ends next to ASCII delimiters, so it is UTF-8 where the record is.)
    #[inline(always)]
    fn hand_over(&self, record: &RawRecord<'_>, ends: &[usize], raw_at: usize, out: &mut SpanEmitter) {
        let bytes = record.raw_and_after;
        let mut row = out.row_in_order();
        let mut start = 0;
        for &end in ends {
            let field = start..end;
            start = end + 1;
            match value_of(bytes, field.clone(), self.quote) {
                Value::Within(value) => row.span(raw_at + value.start, raw_at + value.end),
                Value::Escaped => row.copied_with(|data| unescape_into(data, bytes, field, self.quote)),
            }
        }
        row.end_row(record.line);
    }

    fn reject_invalid_utf8(&self, line: u64, field: usize, raw: &[u8], out: &mut SpanEmitter) {
        let name = &self.names.as_ref().expect("columns are set before data rows")[field];
        out.reject(line, format!("invalid UTF-8 in column `{name}`"), raw);
    }

    fn column_name(&self, i: usize, name: &str) -> String {
        let name = if self.trim { name.trim_matches([' ', '\t']) } else { name };
        if name.is_empty() { format!("column_{}", i + 1) } else { name.to_string() }
    }

    fn set_columns(&mut self, names: Vec<String>, out: &mut SpanEmitter) {
        for name in &names {
            out.column(name);
        }
        self.names = Some(names);
    }
}

/// A field's value: a quoted field loses its quotes, and a doubled quote inside becomes one (as csv-core
/// reads it, text after the closing quote is kept as it is). Fields csv-core already unquoted (`in_raw`
/// false) pass unchanged; only a field with a doubled quote is copied, into `scratch`.
fn unquote<'a>(scratch: &'a mut Vec<u8>, quote: u8, field: &'a str, in_raw: bool) -> &'a str {
    if !in_raw {
        return field;
    }
    let bytes = field.as_bytes();
    match value_of(bytes, 0..bytes.len(), quote) {
        // The quote is ASCII, so byte offsets next to it are character boundaries.
        Value::Within(value) => &field[value],
        Value::Escaped => {
            scratch.clear();
            unescape_into(scratch, bytes, 0..bytes.len(), quote);
            std::str::from_utf8(scratch).expect("unescaping UTF-8 around ASCII quotes leaves UTF-8")
        }
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

export_span_parser!(CsvParser);

#[cfg(test)]
mod tests {
    use super::CsvParser;
    use serde_json::json;
    use sluice_plugin_sdk::testing::parse_spans;

    #[test]
    fn fields_cross_as_spans_of_each_window_whatever_the_chunks() {
        let input = "\u{feff}id,note,city\r\n1,\"say \"\"hi\"\"\",Zürich\r\n2,plain,\r\n\r\n3,\"a, b\",\"x\"\n4,\"two\nlines\",\"\"\n5,\"text\" after,\"\"\"\"";
        let whole = parse_spans::<CsvParser>(&[], input.as_bytes(), 1 << 20).unwrap();
        assert_eq!(
            whole.records,
            [
                json!({"id": "1", "note": "say \"hi\"", "city": "Zürich"}),
                json!({"id": "2", "note": "plain", "city": ""}),
                json!({"id": "3", "note": "a, b", "city": "x"}),
                json!({"id": "4", "note": "two\nlines", "city": ""}),
                // Text after the closing quote is kept, as csv-core keeps it; four quotes are one.
                json!({"id": "5", "note": "text after", "city": "\""}),
            ]
        );
        assert_eq!(whole.lines, [2, 3, 5, 6, 8]);
        // Cut anywhere (inside the byte-order mark, a quoted field, a UTF-8 character, a CRLF), a record's
        // spans index the window of the call that completes it, which begins with the bytes kept before.
        for chunk in [1, 2, 3, 5, 7, 64] {
            assert_eq!(
                parse_spans::<CsvParser>(&[], input.as_bytes(), chunk).unwrap(),
                whole,
                "chunks of {chunk}"
            );
        }
    }

    #[test]
    fn trimmed_null_and_padded_values_and_csv_core_dialects_cross_as_copies_or_nulls() {
        let input = b"a;b;c\n x ;NA\n'p;q';r;s\n";
        let options = [("delimiter", ";"), ("quote", "'"), ("trim", "true"), ("null_values", "[\"NA\"]")];
        let padded = [options.as_slice(), &[("ragged_rows", "pad")]].concat();
        let outcome = parse_spans::<CsvParser>(&padded, input, 4).unwrap();
        assert_eq!(
            outcome.records,
            [json!({"a": "x", "b": null, "c": null}), json!({"a": "p;q", "b": "r", "c": "s"})]
        );
        let comments = [("comment", "#")];
        let outcome = parse_spans::<CsvParser>(&comments, b"a,b\n# note\n1,\"2\"\"\"\n", 3).unwrap();
        assert_eq!(outcome.records, [json!({"a": "1", "b": "2\""})]);
        assert_eq!(outcome.lines, [3]);
    }
}
