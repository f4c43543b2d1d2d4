//! A fixed-width text format: each line holds fields at fixed character positions.
//!
//! Option `fields` lists the fields in order as `name:width`, e.g. `["id:4", "name:10", "amount:8"]`.
//! Values are trimmed of spaces; an all-blank value is null. A line shorter than the first n-1 fields is
//! rejected with its line number; the last field takes whatever the line has left. Blank lines are skipped.

use sluice_plugin_sdk::{Emitter, FatalError, LineSplitter, Options, Parser, Value, export_parser, fatal};

struct FixedWidth {
    /// Each field's name and width in characters.
    fields: Vec<(String, usize)>,
    lines: LineSplitter,
}

impl Parser for FixedWidth {
    fn create(mut options: Options) -> Result<Self, FatalError> {
        let specs = options.list("fields")?.ok_or_else(|| fatal(0, "option `fields` is required"))?;
        options.finish()?;
        let fields = specs
            .iter()
            .map(|spec| {
                let (name, width) = spec.rsplit_once(':').ok_or_else(|| bad_field(spec))?;
                let width = width.parse().map_err(|_| bad_field(spec))?;
                Ok((name.to_string(), width))
            })
            .collect::<Result<Vec<_>, FatalError>>()?;
        if fields.is_empty() {
            return Err(fatal(0, "option `fields` lists no field"));
        }
        Ok(FixedWidth { fields, lines: LineSplitter::default() })
    }

    fn feed(&mut self, chunk: &[u8], out: &mut Emitter) -> Result<(), FatalError> {
        let fields = &self.fields;
        self.lines.feed(chunk, |line, bytes| read_line(fields, line, bytes, out))
    }

    fn finish(&mut self, out: &mut Emitter) -> Result<(), FatalError> {
        let fields = &self.fields;
        self.lines.finish(|line, bytes| read_line(fields, line, bytes, out))
    }
}

fn bad_field(spec: &str) -> FatalError {
    fatal(0, format!("field `{spec}` is not `name:width`"))
}

fn read_line(
    fields: &[(String, usize)],
    line: u64,
    bytes: &[u8],
    out: &mut Emitter,
) -> Result<(), FatalError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    let Ok(text) = std::str::from_utf8(bytes) else {
        out.reject(line, "invalid UTF-8", bytes);
        return Ok(());
    };
    let needed: usize = fields[..fields.len() - 1].iter().map(|(_, width)| width).sum();
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    if chars.len() < needed {
        out.reject(
            line,
            format!("line has {} characters, fields need at least {needed}", chars.len()),
            bytes,
        );
        return Ok(());
    }
    let byte_at = |char_index: usize| chars.get(char_index).map_or(text.len(), |(byte, _)| *byte);
    let mut start = 0;
    for (i, (name, width)) in fields.iter().enumerate() {
        let end = if i + 1 == fields.len() { chars.len() } else { start + width };
        let value = text[byte_at(start)..byte_at(end.min(chars.len()))].trim();
        let column = out.batch().column(name);
        out.batch().push(column, if value.is_empty() { Value::Null } else { Value::Text(value) });
        start = end;
    }
    out.end_row(line);
    Ok(())
}

export_parser!(FixedWidth);
