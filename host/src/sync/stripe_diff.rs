//! `sluice preview DATAFLOW --diff`, for a dataflow whose sink is Stripe: what its next run would do to
//! the Stripe objects, record by record, with nothing written. Each record the run would send is made as
//! the run makes it (plugins, template, the sink's own checks); the object it would change is read from
//! Stripe, by the record's own id or by the Stripe id the results table holds for its external id, at the
//! sink's rate limit. A record then shows as a create, an update with each field's value before and
//! after, or unchanged.

use super::runner::Runner;
use super::{SyncError, member_format::MemberFormats};
use crate::batch::RejectedRow;
use crate::config::{DataflowConfig, SinkKind};
use crate::sink::{Outgoing, StripeTarget, rejected_row, stored_pairs};
use crate::stripe::{StripeClient, StripeError};
use futures::StreamExt;
use serde::Serialize;
use serde_json::Value as Json;
use std::collections::HashMap;

/// What the next run of a dataflow would do to the Stripe objects.
#[derive(Clone, Debug, Serialize)]
pub struct StripeDiff {
    /// The target object, by API path (`products`).
    pub object: String,
    /// Each record the run would send, in the order it would send them.
    pub records: Vec<RecordDiff>,
    /// Rows the run would reject before sending (the parser's, the template's, the sink's), by object.
    pub rejects: Vec<(String, RejectedRow)>,
    /// Objects that could not be read, each with why.
    pub errors: Vec<String>,
    /// Whether more records than the limit were to be sent: the diff covers the first ones.
    pub capped: bool,
}

/// What the run would do with one record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RecordDiff {
    /// The key of the object the record comes from.
    pub object: String,
    /// Its line there.
    pub line: u64,
    /// The record's external id.
    pub external_id: String,
    /// The Stripe object it would change, where one exists.
    pub stripe_id: Option<String>,
    /// Create, update or unchanged.
    pub action: Action,
    /// For an update, each field that would change.
    pub changes: Vec<FieldChange>,
}

/// What the run would do with a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// A new Stripe object.
    Create,
    /// An object changed, field by field.
    Update,
    /// An object left as it is.
    Unchanged,
}

impl Action {
    /// How the diff names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Unchanged => "unchanged",
        }
    }
}

/// One field an update would change, by its parameter name (`metadata[sku]`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FieldChange {
    /// The parameter.
    pub field: String,
    /// Its value in Stripe now; `None` where unset.
    pub old: Option<String>,
    /// Its value after the run.
    pub new: String,
    /// Whether Stripe takes it on create only: the run then replaces the object, or refuses the row,
    /// as the object's kind says (`sluice check` names which), instead of updating it.
    pub create_only: bool,
}

impl Runner<'_> {
    /// The diff of the dataflow `name`'s next run, over its first `limit` records (see the module's doc).
    pub fn stripe_diff(&self, name: &str, limit: usize) -> Result<StripeDiff, SyncError> {
        let dataflow = self.config().dataflow(name)?;
        if dataflow.sink.kind != SinkKind::Stripe {
            return Err(SyncError::Plan(format!(
                "dataflow `{name}` writes tables, not Stripe objects: --diff compares what a run would send to Stripe with what Stripe holds"
            )));
        }
        let settings = dataflow.sink.client_settings();
        let target = StripeTarget::of(&dataflow.sink, &settings);
        let sink_error = |message: String| SyncError::Plan(format!("dataflow `{name}`: {message}"));
        let client = StripeClient::new(settings).map_err(sink_error)?;
        let plugin = self.load_plugin(name, dataflow)?;
        let template = self.load_template(name, dataflow)?;
        let source = self.build_source(name, dataflow)?;
        let plan = self.plan_next(name, dataflow, (&plugin, template.as_ref()), source.as_ref())?;
        let mut diff = StripeDiff {
            object: target.object().to_string(),
            records: Vec::new(),
            rejects: Vec::new(),
            errors: Vec::new(),
            capped: false,
        };
        let mut outgoing = Vec::new();
        let member_formats = MemberFormats::new(self, name);
        for object in plan.to_import() {
            if diff.capped {
                break;
            }
            let (plugin, options) = match member_formats.other_than(&plugin, object) {
                None => (plugin.clone(), dataflow.file_format().option_pairs()),
                Some(Ok(other)) => (other, Vec::new()),
                Some(Err(error)) => {
                    diff.errors.push(format!("object `{}`: {error}", object.key));
                    continue;
                }
            };
            let plugins = (&plugin, template.as_ref());
            let read = self.read_object(source.as_ref(), dataflow, plugins, &options, object, |parsed| {
                for batch in &parsed.batches {
                    for row in 0..batch.num_rows() {
                        if outgoing.len() == limit {
                            diff.capped = true;
                            return Ok(false);
                        }
                        match target.outgoing(batch, row) {
                            Ok(record) => outgoing.push((object.key.clone(), batch.line(row), record)),
                            Err(reason) => {
                                diff.rejects.push((object.key.clone(), rejected_row(batch, row, reason)))
                            }
                        }
                    }
                }
                diff.rejects.extend(parsed.rejects.into_iter().map(|reject| (object.key.clone(), reject)));
                Ok(true)
            });
            if let Some(error) = read {
                diff.errors.push(format!("object `{}`: {error}", object.key));
            }
        }
        let known = Known::read(self, name, dataflow, &target).map_err(sink_error)?;
        diff.records = self
            .runtime()
            .block_on(compare_all(&client, &target, &known, outgoing))
            .map_err(|e| sink_error(e.to_string()))?;
        Ok(diff)
    }
}

/// What earlier runs recorded of each external id in the results table: the Stripe id, and the
/// parameters Stripe took on create only.
struct Known {
    ids: HashMap<String, String>,
    create_only: HashMap<String, String>,
}

impl Known {
    /// Read from the results table of `dataflow`, without opening it for writing.
    fn read(
        runner: &Runner<'_>,
        name: &str,
        dataflow: &DataflowConfig,
        target: &StripeTarget,
    ) -> Result<Known, String> {
        let url = runner.config().sink_database(dataflow);
        let table = dataflow.table_name(name);
        let pairs = |value: &str| -> Result<HashMap<String, String>, String> {
            Ok(stored_pairs(&url, name, &table, "external_id", value)?.into_iter().collect())
        };
        let ids = match target.caller_ids() {
            true => HashMap::new(),
            false => pairs("stripe_id")?,
        };
        Ok(Known { ids, create_only: pairs("create_only")? })
    }
}

/// Compares every record with the object it would change, `target.concurrency` reads at a time.
async fn compare_all(
    client: &StripeClient,
    target: &StripeTarget,
    known: &Known,
    outgoing: Vec<(String, u64, Outgoing)>,
) -> Result<Vec<RecordDiff>, StripeError> {
    let compare = |(object, line, record): (String, u64, Outgoing)| async move {
        let external_id = record.external_id().to_string();
        let stripe_id = match target.caller_ids() {
            true => Some(external_id.clone()),
            false => known.ids.get(&external_id).cloned(),
        };
        let current = match &stripe_id {
            Some(id) => read_current(client, target, id).await?,
            None => None,
        };
        let (action, changes) = match &current {
            None => (Action::Create, Vec::new()),
            Some(current) => {
                let changes = changes(target, &record, current, known.create_only.get(&external_id));
                (if changes.is_empty() { Action::Unchanged } else { Action::Update }, changes)
            }
        };
        let stripe_id = current.and(stripe_id);
        Ok(RecordDiff { object, line, external_id, stripe_id, action, changes })
    };
    futures::stream::iter(outgoing)
        .map(compare)
        .buffered(target.concurrency)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}

/// The object `id` as Stripe holds it now; `None` where Stripe has no such object (a record whose
/// object was deleted is made anew).
async fn read_current(
    client: &StripeClient,
    target: &StripeTarget,
    id: &str,
) -> Result<Option<Json>, StripeError> {
    match client.get(&format!("{}/{id}", target.object()), &[]).await {
        Ok(answer) => Ok(Some(answer.body)),
        Err(error) if error.code() == Some("resource_missing") => Ok(None),
        Err(error) => Err(error),
    }
}

/// The fields `record` would change on `current`: each parameter Stripe's update takes whose value
/// differs from Stripe's, and each one it takes on create only that differs from what the object was
/// created with (`created_with`, as the results table recorded it).
fn changes(
    target: &StripeTarget,
    record: &Outgoing,
    current: &Json,
    created_with: Option<&String>,
) -> Vec<FieldChange> {
    let mut changes = Vec::new();
    for (field, new) in record.params() {
        if field == "id" || field == "expand" {
            continue;
        }
        if target.spec.updates(field) {
            let old = value_at(current, field);
            if old.as_deref() != Some(new.as_str()) {
                changes.push(FieldChange { field: field.clone(), old, new: new.clone(), create_only: false });
            }
        }
    }
    changes.sort_by(|a, b| a.field.cmp(&b.field));
    let created: HashMap<String, String> =
        created_with.and_then(|text| serde_json::from_str(text).ok()).unwrap_or_default();
    let now: HashMap<String, String> = serde_json::from_str(&target.create_only(record)).unwrap_or_default();
    if created_with.is_some() {
        let mut fixed: Vec<(&String, &String)> =
            now.iter().filter(|(name, value)| created.get(*name) != Some(value)).collect();
        fixed.sort();
        for (field, new) in fixed {
            changes.push(FieldChange {
                field: field.clone(),
                old: created.get(field).cloned(),
                new: new.clone(),
                create_only: true,
            });
        }
    }
    changes
}

/// The value of the parameter `field` (`metadata[sku]`, `items[0][price]`) in a Stripe object, as a
/// form would send it; `None` where unset.
fn value_at(object: &Json, field: &str) -> Option<String> {
    let mut parts = field.split('[').map(|part| part.trim_end_matches(']'));
    let mut value = object.get(parts.next()?)?;
    for part in parts {
        value = match value {
            Json::Array(items) => items.get(part.parse::<usize>().ok()?)?,
            other => other.get(part)?,
        };
    }
    match value {
        Json::Null => None,
        Json::String(text) => Some(text.clone()),
        Json::Bool(b) => Some(b.to_string()),
        Json::Number(n) => Some(n.to_string()),
        nested => Some(nested.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_parameter_is_read_from_the_object_as_a_form_would_send_it() {
        let product = json!({
            "name": "Mug", "active": true, "metadata": { "sku": "mug" }, "description": null,
            "marketing_features": [{ "name": "Big" }], "package_dimensions": { "height": 1.5 }
        });
        assert_eq!(value_at(&product, "name").as_deref(), Some("Mug"));
        assert_eq!(value_at(&product, "active").as_deref(), Some("true"));
        assert_eq!(value_at(&product, "metadata[sku]").as_deref(), Some("mug"));
        assert_eq!(value_at(&product, "marketing_features[0][name]").as_deref(), Some("Big"));
        assert_eq!(value_at(&product, "package_dimensions[height]").as_deref(), Some("1.5"));
        assert_eq!(value_at(&product, "description"), None);
        assert_eq!(value_at(&product, "metadata[tier]"), None);
        assert_eq!(value_at(&product, "marketing_features[3][name]"), None);
    }
}
