//! Records as Stripe's form-encoded parameters: a field's dotted path (`metadata.sku`,
//! `items.0.price`) becomes the bracketed name Stripe reads (`metadata[sku]`, `items[0][price]`), and a
//! nested JSON value is spread into one parameter per leaf.

use crate::batch::{InvalidText, RecordBatch, Value};
use serde_json::Value as Json;

/// The parameters of one record, in column order. Null values are left out (Stripe takes an empty value
/// as "unset", which a missing field must not do).
pub fn record_params(batch: &RecordBatch, row: usize) -> Result<Vec<(String, String)>, InvalidText> {
    let mut params = Vec::with_capacity(batch.columns().len());
    for (index, column) in batch.columns().iter().enumerate() {
        let name = bracketed(column.name());
        match batch.value(index, row)? {
            Value::Null => {}
            Value::Boolean(b) => params.push((name, b.to_string())),
            Value::Integer(i) => params.push((name, i.to_string())),
            Value::Float(f) => params.push((name, f.to_string())),
            Value::Text(text) => params.push((name, text.to_string())),
            Value::Timestamp(timestamp) => params.push((name, timestamp.to_string())),
            Value::Json(text) => match serde_json::from_str::<Json>(text) {
                Ok(json) => spread(&name, &json, &mut params),
                Err(_) => params.push((name, text.to_string())),
            },
        }
    }
    Ok(params)
}

/// `a.b.0.c` as `a[b][0][c]`.
pub fn bracketed(path: &str) -> String {
    let mut parts = path.split('.');
    let mut name = parts.next().unwrap_or_default().to_string();
    for part in parts {
        name.push('[');
        name.push_str(part);
        name.push(']');
    }
    name
}

/// One parameter per leaf of `json`, under `name`.
fn spread(name: &str, json: &Json, params: &mut Vec<(String, String)>) {
    match json {
        Json::Null => {}
        Json::Object(map) => {
            map.iter().for_each(|(key, value)| spread(&format!("{name}[{key}]"), value, params))
        }
        Json::Array(items) => items
            .iter()
            .enumerate()
            .for_each(|(index, value)| spread(&format!("{name}[{index}]"), value, params)),
        Json::String(text) => params.push((name.to_string(), text.clone())),
        other => params.push((name.to_string(), other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::BatchBuilder;

    #[test]
    fn dotted_paths_and_nested_json_become_bracketed_parameters() {
        let mut builder = BatchBuilder::new(&["name", "metadata.sku", "items", "active", "note", "tax"]);
        builder.push_row(
            2,
            &[
                Value::Text("Mug"),
                Value::Text("a 1&b"),
                Value::Json(r#"[{"price":"p1","quantity":2},{"price":"p2"}]"#),
                Value::Boolean(true),
                Value::Null,
                Value::Json(r#"{"ids":{"vat":"DE1"}}"#),
            ],
        );
        let params = record_params(&builder.finish(), 0).unwrap();
        let pairs: Vec<(&str, &str)> = params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            pairs,
            [
                ("name", "Mug"),
                ("metadata[sku]", "a 1&b"),
                ("items[0][price]", "p1"),
                ("items[0][quantity]", "2"),
                ("items[1][price]", "p2"),
                ("active", "true"),
                ("tax[ids][vat]", "DE1"),
            ]
        );
        assert_eq!(bracketed("default_price_data.unit_amount"), "default_price_data[unit_amount]");
    }
}
