//! JSON helpers shared by the plugins that read JSON or write values as JSON.

use crate::Value;

/// The value of a JSON number's text: an integer where it fits an `s64`, a float where it is finite, and
/// otherwise the number's own text as JSON, so that no digit of a huge or very precise number is lost.
pub fn number_value(text: &str) -> Value<'_> {
    let is_integer = !text.bytes().any(|b| matches!(b, b'.' | b'e' | b'E'));
    if is_integer && let Ok(integer) = text.parse::<i64>() {
        return Value::Integer(integer);
    }
    match text.parse::<f64>() {
        Ok(float) if float.is_finite() && (!is_integer || float.abs() < 9.007_199_254_740_992e15) => {
            Value::Float(float)
        }
        _ => Value::Json(text),
    }
}

/// `value` as a JSON number; NaN and the infinities, which JSON has no number for, as their text.
pub fn float(value: f64) -> serde_json::Value {
    serde_json::Number::from_f64(value)
        .map_or_else(|| serde_json::Value::String(value.to_string()), serde_json::Value::Number)
}
