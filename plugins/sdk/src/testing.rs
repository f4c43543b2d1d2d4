//! Running a plugin's own logic natively, in its `cargo test`, with no host: a [`Parser`] fed a sample in
//! chunks, or a [`Template`] given rows. What comes back is plain JSON and line numbers, easy to assert on.
//!
//! ```ignore
//! #[test]
//! fn each_line_is_a_record() {
//!     let outcome = sluice_plugin_sdk::testing::parse::<Lines>(&[], b"one\ntwo\n", 3).unwrap();
//!     assert_eq!(outcome.records, vec![serde_json::json!({"line": "one"}), serde_json::json!({"line": "two"})]);
//! }
//! ```

use crate::bindings::sluice::plugin::types::{Batch, FatalError, RejectedRow};
use crate::span_bindings::sluice::plugin::spans::{SpanBatch, SpanColumnValues};
use crate::template::{Input, Records};
use crate::{Emitter, Options, Parser, RangeInput, RangedParser, SpanEmitter, SpanParser, Template, Value};

/// What a plugin made of its input.
#[derive(Debug, Default, PartialEq)]
pub struct Outcome {
    /// Each record as a JSON object, in order.
    pub records: Vec<serde_json::Value>,
    /// The 1-based line each record came from.
    pub lines: Vec<u64>,
    /// Each refused row as (line, reason).
    pub rejects: Vec<(u64, String)>,
}

impl Outcome {
    fn add(&mut self, batches: &[Batch], rejects: &[RejectedRow]) {
        for batch in batches {
            let input = Input::new(batch);
            for row in 0..input.rows() {
                self.records.push(serde_json::from_str(&input.row_json(row)).expect("row_json is JSON"));
                self.lines.push(input.line(row));
            }
        }
        self.rejects.extend(rejects.iter().map(|r| (r.line, r.reason.clone())));
    }
}

fn options(pairs: &[(&str, &str)]) -> Options {
    Options::new(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
}

/// Feeds `input` to a new `P` (made from `options`) in chunks of `chunk` bytes, as the host does (the host's
/// chunks are 1 MiB; small ones here find the bugs of a record cut across chunks), then finishes it.
pub fn parse<P: Parser>(
    options_given: &[(&str, &str)],
    input: &[u8],
    chunk: usize,
) -> Result<Outcome, FatalError> {
    let mut parser = P::create(options(options_given))?;
    let mut out = Emitter::default();
    let mut outcome = Outcome::default();
    for piece in input.chunks(chunk.max(1)) {
        parser.feed(piece, &mut out)?;
        let done = out.take_completed();
        outcome.add(&done.batches, &done.rejects);
    }
    parser.finish(&mut out)?;
    let done = out.take_all();
    outcome.add(&done.batches, &done.rejects);
    Ok(outcome)
}

/// As [`parse`], for a [`SpanParser`]: each call's spans are read from its window (the bytes kept from the
/// call before, then its chunk), as the host reads them.
///
/// # Panics
/// Where the parser breaks what the host checks: a span outside its bytes, ending before it starts, or
/// overlapping the one before it in its column; more bytes kept than the window holds.
pub fn parse_spans<P: SpanParser>(
    options_given: &[(&str, &str)],
    input: &[u8],
    chunk: usize,
) -> Result<Outcome, FatalError> {
    let mut parser = P::create(options(options_given))?;
    let mut out = SpanEmitter::default();
    let mut outcome = Outcome::default();
    let mut window = Vec::new();
    let pieces = input.chunks(chunk.max(1)).map(Some).chain([None]);
    for piece in pieces {
        out.begin(piece.map_or(0, <[u8]>::len));
        match piece {
            Some(piece) => {
                window.extend_from_slice(piece);
                parser.feed(piece, &mut out)?;
            }
            None => parser.finish(&mut out)?,
        }
        let done = out.take();
        for batch in &done.batches {
            outcome.add_spans(batch, &window);
        }
        outcome.rejects.extend(done.rejects.iter().map(|r| (r.line, r.reason.clone())));
        let keep = done.keep as usize;
        assert!(keep <= window.len(), "keeps {keep} bytes of a window of {}", window.len());
        window.drain(..window.len() - keep);
    }
    Ok(outcome)
}

impl Outcome {
    /// Adds a span batch's records, each value read from `window` or its column's copies.
    fn add_spans(&mut self, batch: &SpanBatch, window: &[u8]) {
        let rows = batch.rows as usize;
        let mut records = vec![serde_json::Map::new(); rows];
        for column in &batch.columns {
            let SpanColumnValues::Spans(spans) = &column.values else {
                panic!("column `{}`: the SDK's span emitter makes span columns only", column.name)
            };
            assert_eq!(spans.bounds.len(), 2 * rows, "column `{}`: two offsets per row", column.name);
            let mut reached = [0, 0];
            for (row, record) in records.iter_mut().enumerate() {
                let copied = spans.copied_rows.contains(&(row as u32));
                let bytes = if copied { &spans.copied_data[..] } else { window };
                let (start, end) = (spans.bounds[2 * row] as usize, spans.bounds[2 * row + 1] as usize);
                let reached = &mut reached[usize::from(copied)];
                assert!(
                    *reached <= start && start <= end && end <= bytes.len(),
                    "column `{}`, row {row}: span {start}..{end} of {} bytes, after one ending at {reached}",
                    column.name,
                    bytes.len()
                );
                *reached = end;
                let valid = column.valid.is_empty() || column.valid[row / 8] >> (row % 8) & 1 == 1;
                let value = match valid {
                    true => {
                        serde_json::Value::String(String::from_utf8_lossy(&bytes[start..end]).into_owned())
                    }
                    false => serde_json::Value::Null,
                };
                record.insert(column.name.clone(), value);
            }
        }
        self.records.extend(records.into_iter().map(serde_json::Value::Object));
        self.lines.extend(&batch.lines);
    }
}

/// Reads `file` with a new ranged parser `P` (made from `options`) to its end, as the host does, with the
/// file held in memory.
pub fn parse_ranged<P: RangedParser>(
    options_given: &[(&str, &str)],
    file: Vec<u8>,
) -> Result<Outcome, FatalError> {
    let mut outcome = Outcome::default();
    crate::ranged::read_all::<P>(options(options_given), RangeInput::from_bytes(file), |done| {
        outcome.add(&done.batches, &done.rejects)
    })?;
    Ok(outcome)
}

/// Gives a new `T` (made from `options`) one batch of `rows`, JSON objects whose values become the batch's
/// values (strings as text, numbers as integers or floats, nested values as JSON); row `n` is line `n + 2`,
/// as if under a header line.
pub fn apply<T: Template>(
    options_given: &[(&str, &str)],
    rows: &[serde_json::Value],
) -> Result<Outcome, FatalError> {
    let mut template = T::create(options(options_given))?;
    let mut input = Emitter::default();
    for (index, row) in rows.iter().enumerate() {
        let object = row.as_object().expect("each row is a JSON object");
        for (name, value) in object {
            let column = input.batch().column(name);
            let json = value.to_string();
            let value = match value {
                serde_json::Value::Null => Value::Null,
                serde_json::Value::Bool(b) => Value::Boolean(*b),
                serde_json::Value::Number(n) => match (n.as_i64(), n.as_f64()) {
                    (Some(i), _) => Value::Integer(i),
                    (None, Some(f)) => Value::Float(f),
                    _ => Value::Json(&json),
                },
                serde_json::Value::String(s) => Value::Text(s),
                _ => Value::Json(&json),
            };
            input.batch().push(column, value);
        }
        input.end_row(index as u64 + 2);
    }
    let batches = input.take_all().batches;
    let mut out = Records::default();
    let mut outcome = Outcome::default();
    for batch in &batches {
        template.apply(&Input::new(batch), &mut out)?;
        let done = out.take();
        outcome.add(std::slice::from_ref(&done.records), &done.rejects);
    }
    Ok(outcome)
}
