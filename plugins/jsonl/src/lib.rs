//! The bundled `jsonl` format plugin: one JSON object per line (JSON Lines, NDJSON).
//!
//! Blank lines are skipped. A line that is not valid JSON, or not an object, is rejected with its line
//! number while the rest of the file loads. Top-level keys become columns; strings, numbers, booleans and
//! null keep their JSON type; nested objects and arrays are kept as JSON text. It takes no options.
//!
//! Each line is read with serde_json into borrowed raw values rather than a `serde_json::Value` tree, so a
//! string without escapes is copied once, straight into the batch.

use serde::de::{DeserializeSeed, Deserializer, Error as _, MapAccess, Visitor};
use serde_json::value::RawValue;
use sluice_plugin_sdk::number_value;
use sluice_plugin_sdk::{
    BatchBuilder, Emitter, FatalError, LineSplitter, Options, Parser, Value, export_parser,
};
use std::borrow::Cow;
use std::fmt;

struct JsonlParser {
    lines: LineSplitter,
}

impl Parser for JsonlParser {
    fn create(options: Options) -> Result<Self, FatalError> {
        options.finish()?;
        Ok(JsonlParser { lines: LineSplitter::default() })
    }

    fn feed(&mut self, chunk: &[u8], out: &mut Emitter) -> Result<(), FatalError> {
        self.lines.feed(chunk, |line, bytes| {
            read_line(line, bytes, out);
            Ok(())
        })
    }

    fn finish(&mut self, out: &mut Emitter) -> Result<(), FatalError> {
        self.lines.finish(|line, bytes| {
            read_line(line, bytes, out);
            Ok(())
        })
    }
}

fn read_line(line: u64, bytes: &[u8], out: &mut Emitter) {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return;
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let result = RecordSeed(out.batch()).deserialize(&mut deserializer).and_then(|()| deserializer.end());
    match result {
        Ok(()) => out.end_row(line),
        Err(error) => {
            out.batch().cancel_row();
            let reason = if error.is_syntax() || error.is_eof() {
                format!("invalid JSON at column {}: {}", error.column(), strip_position(&error))
            } else {
                strip_position(&error)
            };
            out.reject(line, reason, bytes);
        }
    }
}

/// serde_json appends "at line L column C" to its messages; the line is always 1 here and misleading.
fn strip_position(error: &serde_json::Error) -> String {
    let message = error.to_string();
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_string(),
        None => message,
    }
}

/// Reads one JSON object, putting each top-level value into the batch's column of its key.
struct RecordSeed<'b>(&'b mut BatchBuilder);

impl<'de> DeserializeSeed<'de> for RecordSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for RecordSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(Key(key)) = map.next_key()? {
            let raw: &'de RawValue = map.next_value()?;
            let column = self.0.column(&key);
            let text = raw.get();
            let value = match text.as_bytes()[0] {
                b'n' => Value::Null,
                b't' => Value::Boolean(true),
                b'f' => Value::Boolean(false),
                b'{' | b'[' => Value::Json(text),
                b'"' if !text.contains('\\') => Value::Text(&text[1..text.len() - 1]),
                b'"' => {
                    let unescaped: String = serde_json::from_str(text).map_err(A::Error::custom)?;
                    self.0.push(column, Value::Text(&unescaped));
                    continue;
                }
                _ => number_value(text),
            };
            self.0.push(column, value);
        }
        Ok(())
    }
}

/// An object key, borrowed from the line where it has no escapes. (serde's own `Cow<str>` always copies.)
struct Key<'de>(Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_str<E>(self, key: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(key)))
            }
            fn visit_str<E>(self, key: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(key.to_string())))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

export_parser!(JsonlParser);
