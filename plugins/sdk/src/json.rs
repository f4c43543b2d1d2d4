//! JSON helpers shared by the JSON-reading plugins.

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
