//! The bundled `json` format plugin: a JSON array of objects, one record each, read as a stream.
//!
//! Option `pointer` (a JSON Pointer, default empty: the top-level value) names where the array of records
//! is, e.g. `/data` for Stripe's list answers `{"object": "list", "data": [...]}`. The rest of the document
//! is checked to be valid JSON and otherwise skipped. Where the pointer is empty and the top-level value is
//! an object, that object is read as one record.
//!
//! An element that is not an object is rejected with its line. Invalid JSON anywhere is a fatal error with
//! its line: the file cannot be read as JSON, and records before the error have already been handed on.
//!
//! The file is read with actson's push parser, event by event, so memory holds one record, not the file.
//! Nested objects and arrays inside a record are written back out as JSON text.

use actson::feeder::PushJsonFeeder;
use actson::options::JsonParserOptionsBuilder;
use actson::{JsonEvent, JsonParser as Actson};
use sluice_plugin_sdk::{Emitter, FatalError, Options, Parser, Value, export_parser, fatal, number_value};

/// Nesting deeper than this is refused (as invalid input) rather than followed.
const MAX_DEPTH: usize = 1024;

struct JsonParser {
    actson: Actson<PushJsonFeeder>,
    pointer: Vec<String>,
    /// The containers open above the records (none are open inside a record: `row` tracks those).
    containers: Vec<Container>,
    found_pointer: bool,
    /// Whether the input held any JSON at all.
    seen_value: bool,
    row: Option<Row>,
    /// The 1-based line of the parser's position, and how much of the current chunk it has counted.
    line: u64,
    counted: usize,
    chunk_start: usize,
}

struct Container {
    is_array: bool,
    /// The key whose value is being read, in an object.
    key: Option<String>,
    holds_records: bool,
}

impl Parser for JsonParser {
    fn create(mut options: Options) -> Result<Self, FatalError> {
        let pointer = parse_pointer(&options.get("pointer").unwrap_or_default())?;
        options.finish()?;
        let actson_options = JsonParserOptionsBuilder::default().with_max_depth(MAX_DEPTH).build();
        Ok(JsonParser {
            actson: Actson::new_with_options(PushJsonFeeder::new(), actson_options),
            pointer,
            containers: Vec::new(),
            found_pointer: false,
            seen_value: false,
            row: None,
            line: 1,
            counted: 0,
            chunk_start: 0,
        })
    }

    fn feed(&mut self, chunk: &[u8], out: &mut Emitter) -> Result<(), FatalError> {
        self.counted = 0;
        let mut pushed = 0;
        while pushed < chunk.len() {
            pushed += self.actson.feeder.push_bytes(&chunk[pushed..]);
            self.drain(chunk, out)?;
        }
        self.count_lines(chunk, chunk.len());
        self.chunk_start += chunk.len();
        Ok(())
    }

    fn finish(&mut self, out: &mut Emitter) -> Result<(), FatalError> {
        self.counted = 0;
        self.actson.feeder.done();
        let drained = self.drain(&[], out);
        if drained.is_err() && !self.seen_value {
            return Err(fatal(self.line, "the file holds no JSON value (it is empty or blank)"));
        }
        drained?;
        if !self.found_pointer {
            return Err(fatal(self.line, format!("no value at pointer `{}`", self.pointer_text())));
        }
        Ok(())
    }
}

impl JsonParser {
    /// Handles every event the bytes pushed so far complete.
    fn drain(&mut self, chunk: &[u8], out: &mut Emitter) -> Result<(), FatalError> {
        loop {
            let event = match self.actson.next_event() {
                Ok(Some(JsonEvent::NeedMoreInput)) | Ok(None) => return Ok(()),
                Ok(Some(event)) => event,
                Err(error) => {
                    let at = self.actson.parsed_bytes().saturating_sub(self.chunk_start);
                    self.count_lines(chunk, at.min(chunk.len()));
                    return Err(fatal(self.line, format!("invalid JSON: {error}")));
                }
            };
            let at = self.actson.parsed_bytes() - self.chunk_start;
            self.count_lines(chunk, at.min(chunk.len()));
            self.on_event(event, out)?;
        }
    }

    fn count_lines(&mut self, chunk: &[u8], upto: usize) {
        if upto > self.counted {
            self.line += chunk[self.counted..upto].iter().filter(|&&b| b == b'\n').count() as u64;
            self.counted = upto;
        }
    }

    fn on_event(&mut self, event: JsonEvent, out: &mut Emitter) -> Result<(), FatalError> {
        self.seen_value = true;
        if self.row.is_some() {
            return self.on_row_event(event, out);
        }
        match event {
            JsonEvent::FieldName => {
                let key = current_str(&self.actson, self.line)?.to_string();
                if let Some(container) = self.containers.last_mut() {
                    container.key = Some(key);
                }
            }
            JsonEvent::EndObject | JsonEvent::EndArray => {
                self.containers.pop();
            }
            _ if self.containers.last().is_some_and(|c| c.holds_records) => {
                self.row = Some(Row::new(self.line));
                self.on_row_event(event, out)?;
            }
            _ if self.at_pointer() => {
                self.found_pointer = true;
                match event {
                    JsonEvent::StartArray => {
                        self.containers.push(Container { is_array: true, key: None, holds_records: true })
                    }
                    // With no pointer, a top-level object (or other value) is one record.
                    _ if self.pointer.is_empty() => {
                        self.row = Some(Row::new(self.line));
                        self.on_row_event(event, out)?;
                    }
                    _ => {
                        let message = format!("the value at `{}` is not an array", self.pointer_text());
                        return Err(fatal(self.line, message));
                    }
                }
            }
            JsonEvent::StartObject | JsonEvent::StartArray => self.containers.push(Container {
                is_array: event == JsonEvent::StartArray,
                key: None,
                holds_records: false,
            }),
            _ => {}
        }
        Ok(())
    }

    /// Whether the value starting now is the one the pointer names.
    fn at_pointer(&self) -> bool {
        self.containers.len() == self.pointer.len()
            && self
                .containers
                .iter()
                .zip(&self.pointer)
                .all(|(container, segment)| !container.is_array && container.key.as_ref() == Some(segment))
    }

    fn pointer_text(&self) -> String {
        self.pointer.iter().map(|s| format!("/{}", s.replace('~', "~0").replace('/', "~1"))).collect()
    }

    fn on_row_event(&mut self, event: JsonEvent, out: &mut Emitter) -> Result<(), FatalError> {
        let text = match event {
            JsonEvent::FieldName | JsonEvent::ValueString | JsonEvent::ValueInt | JsonEvent::ValueFloat => {
                Some(current_str(&self.actson, self.line)?)
            }
            _ => None,
        };
        let row = self.row.as_mut().expect("called inside a row");
        if row.on_event(event, text, out) {
            self.row = None;
        }
        Ok(())
    }
}

/// The text of the string, key or number the parser has just read.
fn current_str(actson: &Actson<PushJsonFeeder>, line: u64) -> Result<&str, FatalError> {
    actson.current_str().map_err(|_| fatal(line, "invalid UTF-8 in a JSON string"))
}

/// One record being read. At depth 1 (the record object's own keys) values go straight into the batch;
/// deeper values, and a record that is not an object at all, are written out as JSON text.
struct Row {
    line: u64,
    depth: usize,
    is_object: bool,
    column: usize,
    nested: JsonWriter,
}

impl Row {
    fn new(line: u64) -> Self {
        Row { line, depth: 0, is_object: false, column: 0, nested: JsonWriter::default() }
    }

    /// Takes one event of the record; true when the record is complete.
    fn on_event(&mut self, event: JsonEvent, text: Option<&str>, out: &mut Emitter) -> bool {
        if self.depth == 0 && event == JsonEvent::StartObject {
            self.is_object = true;
            self.depth = 1;
            return false;
        }
        if self.is_object && self.depth == 1 {
            let batch = out.batch();
            match event {
                JsonEvent::FieldName => self.column = batch.column(text.unwrap_or_default()),
                JsonEvent::ValueString => batch.push(self.column, Value::Text(text.unwrap_or_default())),
                JsonEvent::ValueInt | JsonEvent::ValueFloat => {
                    batch.push(self.column, number_value(text.unwrap_or_default()))
                }
                JsonEvent::ValueTrue => batch.push(self.column, Value::Boolean(true)),
                JsonEvent::ValueFalse => batch.push(self.column, Value::Boolean(false)),
                JsonEvent::ValueNull => batch.push(self.column, Value::Null),
                JsonEvent::EndObject => {
                    out.end_row(self.line);
                    return true;
                }
                JsonEvent::StartObject | JsonEvent::StartArray => {
                    self.nested.event(event, text);
                    self.depth += 1;
                }
                JsonEvent::EndArray | JsonEvent::NeedMoreInput => {}
            }
            return false;
        }
        self.nested.event(event, text);
        match event {
            JsonEvent::StartObject | JsonEvent::StartArray => self.depth += 1,
            JsonEvent::EndObject | JsonEvent::EndArray => self.depth -= 1,
            _ => {}
        }
        if self.is_object && self.depth == 1 {
            out.batch().push(self.column, Value::Json(&self.nested.take()));
            false
        } else if !self.is_object && self.depth == 0 {
            let found = match event {
                JsonEvent::EndArray => "an array",
                JsonEvent::ValueString => "a string",
                JsonEvent::ValueInt | JsonEvent::ValueFloat => "a number",
                JsonEvent::ValueTrue | JsonEvent::ValueFalse => "a boolean",
                _ => "null",
            };
            let raw = self.nested.take();
            out.reject(self.line, format!("expected a JSON object, found {found}"), raw.as_bytes());
            true
        } else {
            false
        }
    }
}

/// Writes JSON events back out as compact JSON text.
#[derive(Default)]
struct JsonWriter {
    text: String,
    /// Per open container: whether the next value is its first.
    first: Vec<bool>,
    after_key: bool,
}

impl JsonWriter {
    fn event(&mut self, event: JsonEvent, text: Option<&str>) {
        match event {
            JsonEvent::EndObject => self.close('}'),
            JsonEvent::EndArray => self.close(']'),
            JsonEvent::FieldName => {
                self.separate();
                self.push_string(text.unwrap_or_default());
                self.text.push(':');
                self.after_key = true;
            }
            JsonEvent::StartObject | JsonEvent::StartArray => {
                self.separate();
                self.text.push(if event == JsonEvent::StartObject { '{' } else { '[' });
                self.first.push(true);
            }
            JsonEvent::ValueString => {
                self.separate();
                self.push_string(text.unwrap_or_default());
            }
            JsonEvent::ValueInt | JsonEvent::ValueFloat => {
                self.separate();
                self.text.push_str(text.unwrap_or_default());
            }
            JsonEvent::ValueTrue | JsonEvent::ValueFalse | JsonEvent::ValueNull => {
                self.separate();
                self.text.push_str(match event {
                    JsonEvent::ValueTrue => "true",
                    JsonEvent::ValueFalse => "false",
                    _ => "null",
                });
            }
            JsonEvent::NeedMoreInput => {}
        }
    }

    /// A comma before every value or key but the first of its container (none after a key).
    fn separate(&mut self) {
        if std::mem::take(&mut self.after_key) {
            return;
        }
        if let Some(first) = self.first.last_mut()
            && !std::mem::replace(first, false)
        {
            self.text.push(',');
        }
    }

    fn close(&mut self, bracket: char) {
        self.text.push(bracket);
        self.first.pop();
    }

    fn push_string(&mut self, s: &str) {
        self.text.push_str(&serde_json::to_string(s).expect("a string always serializes"));
    }

    fn take(&mut self) -> String {
        std::mem::take(&mut self.text)
    }
}

/// Splits a JSON Pointer (RFC 6901) into keys.
fn parse_pointer(pointer: &str) -> Result<Vec<String>, FatalError> {
    if pointer.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = pointer.strip_prefix('/') else {
        return Err(fatal(0, format!("option `pointer` is `{pointer}`; a JSON Pointer starts with `/`")));
    };
    Ok(rest.split('/').map(|s| s.replace("~1", "/").replace("~0", "~")).collect())
}

export_parser!(JsonParser);
