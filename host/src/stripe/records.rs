//! Stripe objects (JSON, as its API lists them) as record batches: a column per top-level field, typed
//! by its JSON value; nested objects and arrays (an invoice's `lines`, a charge's `billing_details`) kept
//! whole as JSON columns.

use crate::batch::{BatchBuilder, RecordBatch, Value};
use serde_json::Value as Json;

/// A batch of `objects`, the first on line `first_line` (its place in the listing, counted from 1).
pub fn objects_batch(objects: &[Json], first_line: u64) -> RecordBatch {
    records_batch(&(first_line..).zip(objects).collect::<Vec<_>>())
}

/// A batch of JSON records, each with its line (a replay's rejected rows, by the lines they came from).
pub fn json_rows_batch(records: &[(u64, Json)]) -> RecordBatch {
    records_batch(&records.iter().map(|(line, record)| (*line, record)).collect::<Vec<_>>())
}

/// A batch of JSON objects, each with its line.
fn records_batch(records: &[(u64, &Json)]) -> RecordBatch {
    let mut columns: Vec<&str> = Vec::new();
    for (_, object) in records {
        for key in object.as_object().into_iter().flat_map(|map| map.keys()) {
            if !columns.contains(&key.as_str()) {
                columns.push(key);
            }
        }
    }
    let mut builder = BatchBuilder::new(&columns);
    let mut texts: Vec<String> = Vec::with_capacity(columns.len());
    for &(line, object) in records {
        texts.clear();
        texts.extend(columns.iter().map(|column| match object.get(*column) {
            Some(nested @ (Json::Object(_) | Json::Array(_))) => nested.to_string(),
            _ => String::new(),
        }));
        let values: Vec<Value<'_>> = columns
            .iter()
            .zip(&texts)
            .map(|(column, text)| match object.get(*column) {
                None | Some(Json::Null) => Value::Null,
                Some(Json::Bool(b)) => Value::Boolean(*b),
                Some(Json::Number(n)) => match (n.as_i64(), n.as_f64()) {
                    (Some(i), _) => Value::Integer(i),
                    (None, Some(f)) => Value::Float(f),
                    _ => Value::Json(text),
                },
                Some(Json::String(s)) => Value::Text(s),
                Some(_) => Value::Json(text),
            })
            .collect();
        builder.push_row(line, &values);
    }
    builder.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_become_typed_columns_and_nested_values_json() {
        let objects = [
            json!({ "id": "ch_1", "amount": 500, "paid": true, "metadata": { "order": "7" }, "refunds": [] }),
            json!({ "id": "ch_2", "amount": 250, "paid": false, "metadata": {}, "description": "gift", "fee": 1.5 }),
        ];
        let batch = objects_batch(&objects, 101);
        let names: Vec<&str> = batch.columns().iter().map(|c| c.name()).collect();
        assert_eq!(names, ["id", "amount", "paid", "metadata", "refunds", "description", "fee"]);
        assert_eq!(batch.line(1), 102);
        assert_eq!(batch.value(1, 0).unwrap(), Value::Integer(500));
        assert_eq!(batch.value(2, 1).unwrap(), Value::Boolean(false));
        assert_eq!(batch.value(3, 0).unwrap(), Value::Json(r#"{"order":"7"}"#));
        assert_eq!(batch.value(5, 0).unwrap(), Value::Null);
        assert_eq!(batch.value(6, 1).unwrap(), Value::Float(1.5));
    }
}
