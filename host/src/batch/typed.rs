//! Typed columns (contract 1.3.0): a column of one type, kept as the flat buffer the plugin handed over
//! (an `i64` per row for integers and timestamps), checked once when the batch is taken.

use super::spans::{Spans, UncheckedSpans};
use super::{Column, InvalidText, TimeUnit, Timestamp, Value, Values, span};
use std::sync::Arc;

/// Which rows hold a value: Arrow's validity bitmap (bit `i % 8` of byte `i / 8`), or `None` for all.
#[derive(Clone, Debug)]
pub(super) struct Validity(Option<Vec<u8>>);

impl Validity {
    /// A column's bitmap as it crossed the boundary, checked to hold a bit per row.
    pub(super) fn of(bits: Vec<u8>, rows: usize) -> Result<Validity, String> {
        match bits {
            bits if bits.is_empty() => Ok(Validity(None)),
            bits if bits.len() == rows.div_ceil(8) => Ok(Validity(Some(bits))),
            bits => Err(format!("a validity bitmap of {} bytes for {rows} rows", bits.len())),
        }
    }

    pub(super) fn is_valid(&self, row: usize) -> bool {
        self.0.as_ref().is_none_or(|bits| bits[row / 8] >> (row % 8) & 1 == 1)
    }

    /// The bitmap, where some row is null.
    pub(super) fn bitmap(&self) -> Option<&[u8]> {
        self.0.as_deref()
    }
}

/// A typed column's values, one per row (a null row's is whatever the plugin left there).
#[derive(Clone, Debug)]
pub(crate) enum TypedValues {
    /// 0 or 1.
    Booleans(Vec<u8>),
    Integers(Vec<i64>),
    Floats(Vec<f64>),
    /// UTF-8 text (or, where `json`, JSON text), row `i` ending at `ends[i]` of `data`.
    Text {
        ends: Vec<u32>,
        data: Vec<u8>,
        json: bool,
    },
    Timestamps {
        unit: TimeUnit,
        utc: bool,
        values: Vec<i64>,
    },
    /// UTF-8 text drawn from a dictionary: row `i` is value `keys[i]`, ending at `ends[keys[i]]` of `data`.
    Dictionary {
        keys: Vec<u32>,
        ends: Vec<u32>,
        data: Vec<u8>,
    },
    /// UTF-8 text still in the bytes a span parser was fed (contract 1.4.0).
    Spans(Spans),
}

impl TypedValues {
    pub(super) fn value<'a>(&'a self, name: &str, row: usize) -> Result<Value<'a>, InvalidText> {
        Ok(match self {
            TypedValues::Booleans(values) => Value::Boolean(values[row] != 0),
            TypedValues::Integers(values) => Value::Integer(values[row]),
            TypedValues::Floats(values) => Value::Float(values[row]),
            TypedValues::Text { ends, data, json } => {
                let text = std::str::from_utf8(span(ends, data, row))
                    .map_err(|_| InvalidText { column: name.to_string(), row })?;
                if *json { Value::Json(text) } else { Value::Text(text) }
            }
            TypedValues::Timestamps { unit, utc, values } => {
                Value::Timestamp(Timestamp { value: values[row], unit: *unit, utc: *utc })
            }
            TypedValues::Dictionary { keys, ends, data } => Value::Text(
                std::str::from_utf8(span(ends, data, keys[row] as usize))
                    .map_err(|_| InvalidText { column: name.to_string(), row })?,
            ),
            TypedValues::Spans(spans) => Value::Text(
                std::str::from_utf8(spans.get(row))
                    .map_err(|_| InvalidText { column: name.to_string(), row })?,
            ),
        })
    }

    fn len(&self) -> usize {
        match self {
            TypedValues::Booleans(values) => values.len(),
            TypedValues::Integers(values) | TypedValues::Timestamps { values, .. } => values.len(),
            TypedValues::Floats(values) => values.len(),
            TypedValues::Text { ends, .. } => ends.len(),
            TypedValues::Dictionary { keys, .. } => keys.len(),
            TypedValues::Spans(spans) => spans.len(),
        }
    }
}

impl Column {
    /// A typed column of `rows` values, checked: a value per row, a validity bitmap (where there is one)
    /// with a bit per row, and text offsets (and dictionary keys) within their data. Text is checked to be
    /// UTF-8 when it is read.
    pub(crate) fn typed(
        name: String,
        valid: Vec<u8>,
        values: TypedValues,
        rows: usize,
    ) -> Result<Column, String> {
        let bad = |what: String| Err(format!("column `{name}`: {what}"));
        if values.len() != rows {
            return bad(format!("{} values for {rows} rows", values.len()));
        }
        let valid = Validity::of(valid, rows).map_err(|what| format!("column `{name}`: {what}"))?;
        match &values {
            TypedValues::Text { ends, data, .. } => {
                check_ends(ends, data.len()).map_err(|what| format!("column `{name}`: row {what}"))?;
            }
            TypedValues::Dictionary { keys, ends, data } => {
                check_ends(ends, data.len())
                    .map_err(|what| format!("column `{name}`: dictionary value {what}"))?;
                let mut keys = keys.iter().enumerate();
                if let Some((row, key)) =
                    keys.find(|&(row, &key)| key as usize >= ends.len() && valid.is_valid(row))
                {
                    return bad(format!(
                        "row {row}: key {key} is outside its dictionary of {} values",
                        ends.len()
                    ));
                }
            }
            _ => {}
        }
        Ok(Column { name, values: Values::Typed { valid, values } })
    }

    /// A column of text as spans into `window` (contract 1.4.0), of `rows` rows. Refused, saying which row,
    /// where a span ends before it starts or past its bytes, or overlaps (or goes back before) the span of
    /// the row before it in the same bytes (see [`Spans::checked`]), or where the validity bitmap does not
    /// have a bit per row.
    pub(crate) fn spans(
        name: String,
        valid: Vec<u8>,
        spans: UncheckedSpans,
        window: &Arc<Vec<u8>>,
        rows: usize,
    ) -> Result<Column, String> {
        let spans = Spans::checked(spans, window, rows).map_err(|what| format!("column `{name}`: {what}"));
        let valid = Validity::of(valid, rows).map_err(|what| format!("column `{name}`: {what}"));
        Ok(Column { name, values: Values::Typed { valid: valid?, values: TypedValues::Spans(spans?) } })
    }
}

/// Checks that text end offsets ascend within `len` bytes; says which one does not.
fn check_ends(ends: &[u32], len: usize) -> Result<(), String> {
    let mut start = 0;
    for (index, &end) in ends.iter().enumerate() {
        if end < start || end as usize > len {
            return Err(format!("{index}: text offset {end} is out of order or past the data"));
        }
        start = end;
    }
    Ok(())
}
