//! The bundled `map` data template: maps the columns of each record to the fields of a target object,
//! declared in `connector.toml`, converting and checking every value on the way.
//!
//! ```toml
//! [dataflows.Catalog.template]
//! plugin = "map"
//! options.object = "products"                          # the target, by its API path
//! [dataflows.Catalog.template.options.fields]
//! id = "sku"                                            # a column, as text
//! name = { column = "title", required = true }
//! active = { column = "active", type = "boolean", default = true }
//! "metadata.sku" = "sku"                                # nested keys joined by dots
//! "metadata.source" = { value = "s3-import" }           # a constant
//! "default_price_data.currency" = { column = "currency", type = "currency" }
//! "default_price_data.unit_amount" = { column = "price", type = "amount", currency_column = "currency" }
//! ```
//!
//! Types: `text` (the default), `integer`, `boolean` (`true`/`false`, `yes`/`no`, `1`/`0`), `amount` (a
//! decimal amount in major units, such as `19.99`, made into the currency's minor units: `1999` cents,
//! `1999` yen; its currency is `currency = "usd"` or `currency_column = "..."`; negative amounts are refused
//! unless `allow_negative = true`), `currency` (an ISO 4217 code Stripe supports, lower-cased),
//! `timestamp` (RFC 3339, `YYYY-MM-DD` or Unix seconds, made into Unix seconds) and `enum` (one of
//! `values = [...]`). An empty value counts as missing: the field takes its `default`, else is left out,
//! and a `required` field rejects the row.
//!
//! The option `object` names the target object by its API path (`products`, `prices`, `customers`): the
//! fields Stripe needs to create one (a product's `name`, a price's `currency`) are then required even
//! where not marked so, and a mapping without them is refused before any row is read.
//!
//! A row with any field that does not fit is rejected whole, with the field, the column and the reason.

use serde_json::Value as Json;
use sluice_plugin_sdk::{FatalError, Input, Options, Records, Template, Value, export_template, fatal};

mod convert;

use convert::{Converted, Kind, convert, currency};

/// Fields the target object cannot be created without, by API path.
fn needed_by(object: &str) -> &'static [&'static str] {
    match object {
        "products" => &["name"],
        "prices" => &["currency"],
        _ => &[],
    }
}

/// Where a field's value comes from.
enum Origin {
    Column(String),
    Constant(Json),
}

/// One target field.
struct Field {
    path: String,
    origin: Origin,
    kind: Kind,
    required: bool,
    default: Option<Json>,
}

struct MapTemplate {
    fields: Vec<Field>,
}

impl Template for MapTemplate {
    fn create(mut options: Options) -> Result<Self, FatalError> {
        let object = options.get("object").unwrap_or_default();
        let Some(fields) = options.get("fields") else {
            return Err(fatal(0, "the map template needs [template.options.fields]: target field = column"));
        };
        options.finish()?;
        let fields: serde_json::Map<String, Json> = serde_json::from_str(&fields)
            .map_err(|_| fatal(0, "option `fields` must be a table of target field = column or { ... }"))?;
        let mut fields =
            fields.into_iter().map(|(path, spec)| field(path, spec)).collect::<Result<Vec<_>, _>>()?;
        for needed in needed_by(&object) {
            match fields.iter_mut().find(|f| f.path == *needed) {
                Some(field) => field.required = true,
                None => {
                    return Err(fatal(
                        0,
                        format!(
                            "Stripe needs `{needed}` to create {object}: map it in [template.options.fields]"
                        ),
                    ));
                }
            }
        }
        Ok(MapTemplate { fields })
    }

    fn apply(&mut self, input: &Input<'_>, out: &mut Records) -> Result<(), FatalError> {
        let columns: Vec<Option<usize>> = self
            .fields
            .iter()
            .map(|field| match &field.origin {
                Origin::Column(name) => input.column(name),
                Origin::Constant(_) => None,
            })
            .collect();
        let currency_columns: Vec<Option<usize>> = self
            .fields
            .iter()
            .map(|field| match &field.kind {
                Kind::Amount { currency_column: Some(name), .. } => input.column(name),
                _ => None,
            })
            .collect();
        for row in 0..input.rows() {
            let mapped = self.fields.iter().enumerate().try_for_each(|(index, field)| {
                let value = match (&field.origin, columns[index]) {
                    (Origin::Constant(constant), _) => Some(json_value(constant)),
                    (Origin::Column(_), Some(column)) => Some(input.value(column, row)),
                    (Origin::Column(_), None) => None,
                };
                let value = value.filter(|v| !is_empty(v));
                let default = field.default.as_ref().map(json_value);
                let Some(value) = value.or(default) else {
                    return if field.required {
                        Err(field.blame("is required and has no value"))
                    } else {
                        Ok(())
                    };
                };
                let row_currency = currency_columns[index].map(|column| input.value(column, row));
                let converted =
                    convert(&field.kind, value, row_currency).map_err(|reason| field.blame(&reason))?;
                let column = out.batch().column(&field.path);
                match &converted {
                    Converted::Text(text) => out.batch().push(column, Value::Text(text)),
                    Converted::Integer(integer) => out.batch().push(column, Value::Integer(*integer)),
                    Converted::Boolean(boolean) => out.batch().push(column, Value::Boolean(*boolean)),
                }
                Ok(())
            });
            match mapped {
                Ok(()) => out.end_row(input.line(row)),
                Err(reason) => out.reject(input.line(row), reason, &input.row_json(row)),
            }
        }
        Ok(())
    }
}

impl Field {
    /// A reason for a reject, naming the field and the column it came from.
    fn blame(&self, reason: &str) -> String {
        match &self.origin {
            Origin::Column(column) => format!("field `{}` (column `{column}`) {reason}", self.path),
            Origin::Constant(_) => format!("field `{}` {reason}", self.path),
        }
    }
}

/// Reads one entry of `fields`: a column name, or a table.
fn field(path: String, spec: Json) -> Result<Field, FatalError> {
    let bad = |message: String| fatal(0, format!("field `{path}`: {message}"));
    let valid_path = !path.is_empty()
        && path
            .split('.')
            .all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
    if !valid_path {
        return Err(bad(
            "a field is a Stripe parameter name, nested keys joined by dots (`metadata.sku`)".into()
        ));
    }
    let table = match spec {
        Json::String(column) => {
            return Ok(Field {
                path,
                origin: Origin::Column(column),
                kind: Kind::Text,
                required: false,
                default: None,
            });
        }
        Json::Object(table) => table,
        _ => {
            return Err(bad(
                "write a column name or a table such as { column = \"price\", type = \"amount\" }".into(),
            ));
        }
    };
    let text = |key: &str| match table.get(key) {
        None => Ok(None),
        Some(Json::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(bad(format!("`{key}` must be text"))),
    };
    for key in table.keys() {
        if ![
            "column",
            "value",
            "type",
            "required",
            "default",
            "currency",
            "currency_column",
            "allow_negative",
            "values",
        ]
        .contains(&key.as_str())
        {
            return Err(bad(format!("unknown setting `{key}`")));
        }
    }
    let origin = match (text("column")?, table.get("value")) {
        (Some(column), None) => Origin::Column(column),
        (None, Some(constant)) => Origin::Constant(constant.clone()),
        _ => return Err(bad("give either `column` or `value`".into())),
    };
    for (key, constant) in [("value", table.get("value")), ("default", table.get("default"))] {
        if matches!(constant, Some(Json::Array(_) | Json::Object(_))) {
            return Err(bad(format!("`{key}` must be text, a number or a boolean")));
        }
    }
    let flag = |key: &str| match table.get(key) {
        None => Ok(false),
        Some(Json::Bool(b)) => Ok(*b),
        Some(_) => Err(bad(format!("`{key}` must be true or false"))),
    };
    let kind = match text("type")?.as_deref().unwrap_or("text") {
        "text" => Kind::Text,
        "integer" => Kind::Integer,
        "boolean" => Kind::Boolean,
        "currency" => Kind::Currency,
        "timestamp" => Kind::Timestamp,
        "amount" => {
            let fixed = text("currency")?;
            let currency_column = text("currency_column")?;
            if fixed.is_some() == currency_column.is_some() {
                return Err(bad(
                    "an amount needs its currency: `currency = \"usd\"` or `currency_column = \"...\"`"
                        .into(),
                ));
            }
            let fixed = fixed.map(|code| currency(&code).map_err(&bad)).transpose()?;
            Kind::Amount { currency: fixed, currency_column, allow_negative: flag("allow_negative")? }
        }
        "enum" => match table.get("values") {
            Some(Json::Array(values)) if !values.is_empty() => Kind::Enum(
                values
                    .iter()
                    .map(|v| v.as_str().map(str::to_string))
                    .collect::<Option<_>>()
                    .ok_or_else(|| bad("`values` must be text".into()))?,
            ),
            _ => return Err(bad("an enum needs `values = [\"...\", ...]`".into())),
        },
        other => {
            return Err(bad(format!(
                "unknown type `{other}`: use text, integer, boolean, amount, currency, timestamp or enum"
            )));
        }
    };
    let (required, default) = (flag("required")?, table.get("default").cloned());
    Ok(Field { path, origin, kind, required, default })
}

/// A constant of the configuration as a value.
fn json_value(json: &Json) -> Value<'_> {
    match json {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Boolean(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Value::Integer(i),
            None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Json::String(s) => Value::Text(s),
        // Refused when the options were read.
        Json::Array(_) | Json::Object(_) => Value::Null,
    }
}

/// Null, or text that is empty or only spaces.
fn is_empty(value: &Value<'_>) -> bool {
    match value {
        Value::Null => true,
        Value::Text(text) => text.trim().is_empty(),
        _ => false,
    }
}

export_template!(MapTemplate);
