//! Column types, and rows in the text format of `COPY ... FROM STDIN`.
//!
//! Text rather than binary COPY: the server parses it as fast, it needs no per-type binary encoders, and a
//! value the column's type cannot take is caught here, per row, before the server would fail the whole
//! COPY on it.

use crate::batch::Value;
use std::fmt::Write as _;

/// A column's type, from the first value a batch brings for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColumnType {
    Boolean,
    Integer,
    Float,
    Text,
    Json,
}

impl ColumnType {
    /// The type a value asks for; `None` for null, which fits any.
    pub fn of(value: &Value<'_>) -> Option<ColumnType> {
        match value {
            Value::Null => None,
            Value::Boolean(_) => Some(ColumnType::Boolean),
            Value::Integer(_) => Some(ColumnType::Integer),
            Value::Float(_) => Some(ColumnType::Float),
            Value::Text(_) => Some(ColumnType::Text),
            Value::Json(_) => Some(ColumnType::Json),
        }
    }

    pub fn sql(self) -> &'static str {
        match self {
            ColumnType::Boolean => "BOOLEAN",
            ColumnType::Integer => "BIGINT",
            ColumnType::Float => "DOUBLE PRECISION",
            ColumnType::Text => "TEXT",
            ColumnType::Json => "JSONB",
        }
    }

    /// The type of a column as the catalog names it (`format_type`); a type Sluice did not make (a user
    /// altered the table) is taken as text, which any value fits as far as Sluice can tell.
    pub fn from_catalog(name: &str) -> ColumnType {
        match name {
            "boolean" => ColumnType::Boolean,
            "bigint" | "integer" | "smallint" => ColumnType::Integer,
            "double precision" | "real" | "numeric" => ColumnType::Float,
            "jsonb" | "json" => ColumnType::Json,
            _ => ColumnType::Text,
        }
    }

    /// Whether the column takes `value` without changing what it means: integers go into floats, and
    /// anything into text (as its text form); nothing else is converted.
    pub fn fits(self, value: &Value<'_>) -> bool {
        match (self, value) {
            (_, Value::Null) | (ColumnType::Text, _) => true,
            (ColumnType::Float, Value::Integer(_) | Value::Float(_)) => true,
            (column, value) => ColumnType::of(value) == Some(column),
        }
    }
}

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

    #[test]
    fn only_lossless_values_fit() {
        assert!(ColumnType::Float.fits(&Value::Integer(3)));
        assert!(ColumnType::Text.fits(&Value::Integer(3)));
        assert!(!ColumnType::Integer.fits(&Value::Float(3.5)));
        assert!(!ColumnType::Integer.fits(&Value::Text("007")));
        assert!(!ColumnType::Json.fits(&Value::Text("x")));
    }
}
