//! Rows in the text format of `COPY ... FROM STDIN`.
//!
//! Text rather than binary COPY: the server parses it as fast, it needs no per-type binary encoders, and a
//! value the column's type cannot take is caught here, per row, before the server would fail the whole
//! COPY on it.

use crate::batch::Value;
use std::fmt::Write as _;

/// Why a value cannot go into PostgreSQL at all, whatever the column's type; the row is rejected.
pub fn unstorable(value: &Value<'_>) -> Option<&'static str> {
    match value {
        Value::Text(text) if text.contains('\0') => Some("PostgreSQL text cannot hold the NUL character"),
        Value::Json(json) if json.contains("\\u0000") => {
            Some("PostgreSQL JSON cannot hold the NUL character (\\u0000)")
        }
        _ => None,
    }
}

/// Appends `value` as one field of a text-format COPY row.
pub fn push_field(out: &mut String, value: &Value<'_>) {
    match value {
        Value::Null => out.push_str("\\N"),
        Value::Boolean(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Integer(i) => out.push_str(itoa::Buffer::new().format(*i)),
        Value::Float(f) if f.is_nan() => out.push_str("NaN"),
        Value::Float(f) if f.is_infinite() => out.push_str(if *f > 0.0 { "Infinity" } else { "-Infinity" }),
        // Rust prints the shortest text that reads back as the same double.
        Value::Float(f) => {
            let _ = write!(out, "{f:?}");
        }
        Value::Text(text) | Value::Json(text) => push_escaped(out, text),
        // RFC 3339 holds nothing COPY escapes.
        Value::Timestamp(timestamp) => {
            let _ = write!(out, "{timestamp}");
        }
    }
}

/// Appends `text` with the COPY text format's escapes: backslash, and the tab, newline and carriage return
/// that would otherwise end the field or the row.
pub fn push_escaped(out: &mut String, text: &str) {
    let mut rest = text;
    while let Some(at) = rest.find(['\\', '\t', '\n', '\r']) {
        out.push_str(&rest[..at]);
        out.push_str(match rest.as_bytes()[at] {
            b'\\' => "\\\\",
            b'\t' => "\\t",
            b'\n' => "\\n",
            _ => "\\r",
        });
        rest = &rest[at + 1..];
    }
    out.push_str(rest);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_escape_what_would_end_them() {
        let mut out = String::new();
        push_escaped(&mut out, "a\tb\nc\\d\re");
        assert_eq!(out, "a\\tb\\nc\\\\d\\re");
        let mut out = String::new();
        for value in [Value::Null, Value::Float(0.1), Value::Float(f64::NEG_INFINITY), Value::Integer(-3)] {
            push_field(&mut out, &value);
            out.push('|');
        }
        assert_eq!(out, "\\N|0.1|-Infinity|-3|");
    }
}
