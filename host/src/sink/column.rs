//! A column's type as Sluice's tables sinks declare it: from the first value a batch brings for it.

use crate::batch::Value;

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
            // Stored as its RFC 3339 text, as a plugin that writes timestamps as text would have it.
            Value::Timestamp(_) => Some(ColumnType::Text),
        }
    }

    /// The type as PostgreSQL names it.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_lossless_values_fit() {
        assert!(ColumnType::Float.fits(&Value::Integer(3)));
        assert!(ColumnType::Text.fits(&Value::Integer(3)));
        assert!(!ColumnType::Integer.fits(&Value::Float(3.5)));
        assert!(!ColumnType::Integer.fits(&Value::Text("007")));
        assert!(!ColumnType::Json.fits(&Value::Text("x")));
    }
}
