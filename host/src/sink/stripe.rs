//! The Stripe sink: each record becomes a Stripe object, created, or updated where the record's external
//! id was imported before. What Stripe answered goes to a results table in the dataflow's database
//! (external id, Stripe id, created or updated, request id), beside the object markers and rejected rows
//! a tables sink keeps, so a run's outcome per record can be read back, and the external id ─► Stripe id
//! map survives the process.
//!
//! Nothing is sent twice by accident: every write carries an idempotency key made of the dataflow, the
//! object's key and ETag, the record's line and the operation, so a retried request, or an object imported
//! again after a crash, meets Stripe's replay of the first answer instead of making a second object.

use super::{CommittedObject, ObjectWrite, RolledBack, SinkError, TableSink};
use crate::batch::{BatchBuilder, RecordBatch, Value};
use crate::plugin::RejectedRow;
use crate::source::ObjectMeta;
use crate::stripe::{StripeClient, StripeError, record_params, top_level};
use futures::StreamExt;
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// The columns of the results table, after Sluice's own.
const RESULT_COLUMNS: [&str; 4] = ["external_id", "stripe_id", "action", "request_id"];

/// Which Stripe object records become, and how a record is known again.
#[derive(Clone, Debug)]
pub struct StripeTarget {
    /// The API path (`products`).
    pub object: String,
    /// The record field (a dotted path) holding the caller's id.
    pub external_id: String,
    /// Requests in flight at once.
    pub concurrency: usize,
}

impl StripeTarget {
    /// Whether the external id is Stripe's own `id` (products take a caller's id on create).
    fn caller_ids(&self) -> bool {
        self.external_id == "id"
    }
}

/// Parameters an object takes on create only; an update leaves them out.
fn create_only(object: &str) -> &'static [&'static str] {
    match object {
        "products" => &["id", "default_price_data"],
        "prices" => &[
            "currency",
            "product",
            "product_data",
            "unit_amount",
            "unit_amount_decimal",
            "recurring",
            "billing_scheme",
            "custom_unit_amount",
            "tiers",
            "tiers_mode",
            "transform_quantity",
        ],
        "customers" => &["payment_method", "source", "tax_id_data", "test_clock"],
        _ => &["id"],
    }
}

/// A sink whose records become Stripe objects, each created or updated through the API by its external id; what Stripe answered goes into a results table.
pub struct StripeSink {
    /// The results table, markers and rejects.
    results: Box<dyn TableSink>,
    client: StripeClient,
    target: StripeTarget,
    dataflow: String,
    runtime: tokio::runtime::Runtime,
    /// External id ─► Stripe id, read from the results table once and kept up to date as records land.
    known: Option<HashMap<String, String>>,
}

impl StripeSink {
    /// A Stripe sink writing through `client` to `target`, its results kept in `results` for `dataflow`.
    pub fn new(
        results: Box<dyn TableSink>,
        client: StripeClient,
        target: StripeTarget,
        dataflow: &str,
    ) -> Result<StripeSink, SinkError> {
        let runtime =
            tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| SinkError {
                table: target.object.clone(),
                message: format!("the Stripe client's runtime could not start: {e}"),
            })?;
        Ok(StripeSink { results, client, target, dataflow: dataflow.to_string(), runtime, known: None })
    }
}

impl TableSink for StripeSink {
    fn committed_objects(&mut self) -> Result<Vec<CommittedObject>, SinkError> {
        self.results.committed_objects()
    }

    /// Deletes Sluice's record of what it sent (results, markers, rejects); the Stripe objects stay, as
    /// Stripe keeps them: a later run updates them through their ids in `metadata` or their own ids.
    fn remove(&mut self) -> Result<u64, SinkError> {
        self.known = None;
        self.results.remove()
    }

    fn rollback_last(&mut self) -> Result<Option<RolledBack>, SinkError> {
        Err(SinkError {
            table: self.target.object.clone(),
            message: format!(
                "a run into Stripe cannot be rolled back: the {} it created or changed are live in Stripe; change them there, or import the earlier file again",
                self.target.object
            ),
        })
    }

    fn newest_run(&mut self) -> Result<Option<i64>, SinkError> {
        self.results.newest_run()
    }

    fn finish_run(&mut self) -> Result<(), SinkError> {
        self.results.finish_run()
    }

    fn pairs(&mut self, key: &str, value: &str) -> Result<Vec<(String, String)>, SinkError> {
        self.results.pairs(key, value)
    }

    fn refuses_all(&self) -> Option<String> {
        self.client.key_refused().map(|error| error.to_string())
    }

    fn begin_object<'s>(
        &'s mut self,
        object: &ObjectMeta,
        run_id: i64,
    ) -> Result<Box<dyn ObjectWrite + 's>, SinkError> {
        if self.known.is_none() && !self.target.caller_ids() {
            self.known = Some(self.results.pairs("external_id", "stripe_id")?.into_iter().collect());
        }
        let StripeSink { results, client, target, dataflow, runtime, known } = self;
        let results = results.begin_object(object, run_id)?;
        Ok(Box::new(StripeObjectWrite {
            results,
            client,
            target,
            runtime,
            known: known.get_or_insert_with(HashMap::new),
            key_base: format!("{dataflow}\0{}\0{}", object.key, object.etag),
        }))
    }
}

struct StripeObjectWrite<'s> {
    results: Box<dyn ObjectWrite + 's>,
    client: &'s StripeClient,
    target: &'s StripeTarget,
    runtime: &'s tokio::runtime::Runtime,
    known: &'s mut HashMap<String, String>,
    /// The dataflow, object key and ETag, the part of every idempotency key this object shares.
    key_base: String,
}

/// One record, ready to send.
struct Outgoing {
    row: usize,
    external_id: String,
    params: Vec<(String, String)>,
}

/// A record Stripe took.
struct Landed {
    stripe_id: String,
    action: &'static str,
    request_id: Option<String>,
}

impl StripeObjectWrite<'_> {
    fn error(&self, message: String) -> SinkError {
        SinkError { table: self.target.object.clone(), message }
    }

    /// The idempotency key of one operation on one record of this object version.
    fn idempotency_key(&self, line: u64, operation: &str) -> String {
        let digest =
            Sha256::digest(format!("{}\0{line}\0{operation}\0{}", self.key_base, self.target.object));
        // Half the digest (128 bits) is ample for a key, and keeps it short.
        format!("sluice-{}", &format!("{digest:x}")[..32])
    }

    /// Creates or updates the object of one record.
    async fn send(&self, record: &Outgoing, line: u64) -> Result<Landed, StripeError> {
        let object = &self.target.object;
        let update_params = || -> Vec<(String, String)> {
            let create_only = create_only(object);
            record
                .params
                .iter()
                .filter(|(name, _)| !create_only.contains(&top_level(name)))
                .cloned()
                .collect()
        };
        let update = |stripe_id: String| async move {
            let path = format!("{object}/{stripe_id}");
            let key = self.idempotency_key(line, "update");
            let answer = self.client.post(&path, &update_params(), &key).await?;
            Ok(Landed { stripe_id, action: "updated", request_id: answer.request_id })
        };
        let known =
            (!self.target.caller_ids()).then(|| self.known.get(&record.external_id).cloned()).flatten();
        if let Some(stripe_id) = known {
            return update(stripe_id).await;
        }
        let key = self.idempotency_key(line, "create");
        match self.client.post(object, &record.params, &key).await {
            Ok(answer) => {
                let stripe_id = answer.body["id"].as_str().unwrap_or_default().to_string();
                Ok(Landed { stripe_id, action: "created", request_id: answer.request_id })
            }
            // A caller's id Stripe already holds: the record was imported before, so it updates.
            Err(error) if self.target.caller_ids() && error.code() == Some("resource_already_exists") => {
                update(record.external_id.clone()).await
            }
            Err(error) => Err(error),
        }
    }
}

impl ObjectWrite for StripeObjectWrite<'_> {
    fn write(&mut self, batch: &RecordBatch) -> Result<(), SinkError> {
        let key_column = batch.columns().iter().position(|c| c.name() == self.target.external_id);
        let mut rejects = Vec::new();
        let mut outgoing = Vec::with_capacity(batch.num_rows());
        for row in 0..batch.num_rows() {
            let external_id = match key_column.map(|c| batch.value(c, row)) {
                Some(Ok(Value::Text(text))) if !text.is_empty() => text.to_string(),
                Some(Ok(Value::Integer(i))) => i.to_string(),
                _ => {
                    let reason = format!(
                        "field `{}` is empty: Sluice needs it to know the record again and update instead of duplicating",
                        self.target.external_id
                    );
                    rejects.push(super::rejected_row(batch, row, reason));
                    continue;
                }
            };
            match record_params(batch, row) {
                Ok(params) => outgoing.push(Outgoing { row, external_id, params }),
                Err(error) => rejects.push(super::rejected_row(batch, row, error.to_string())),
            }
        }

        let this = &*self;
        let outgoing = &outgoing;
        let send = |index: usize| {
            let record = &outgoing[index];
            async move { (index, this.send(record, batch.line(record.row)).await) }
        };
        let mut sent: Vec<(usize, Result<Landed, StripeError>)> = self.runtime.block_on(async {
            let mut indexes = 0..outgoing.len();
            let mut sent = Vec::with_capacity(outgoing.len());
            // A key Stripe has not taken yet is tried on one record before the rest go out together.
            while !this.client.key_accepted() {
                let Some(index) = indexes.next() else { break };
                sent.push(send(index).await);
            }
            let rest = futures::stream::iter(indexes).map(send).buffer_unordered(this.target.concurrency);
            sent.extend(rest.collect::<Vec<_>>().await);
            sent
        });

        let mut results = BatchBuilder::new(&RESULT_COLUMNS);
        let mut failure = None;
        sent.sort_by_key(|(index, _)| *index);
        for (index, landed) in sent {
            let record = &outgoing[index];
            let line = batch.line(record.row);
            match landed {
                Ok(Landed { stripe_id, action, request_id }) => {
                    let request_id = request_id.as_deref().map_or(Value::Null, Value::Text);
                    let values = [
                        Value::Text(&record.external_id),
                        Value::Text(&stripe_id),
                        Value::Text(action),
                        request_id,
                    ];
                    results.push_row(line, &values);
                    self.known.insert(record.external_id.clone(), stripe_id);
                }
                Err(error @ StripeError::Refused { .. }) => {
                    let reason =
                        format!("Stripe refused {} `{}`: {error}", self.target.object, record.external_id);
                    rejects.push(super::rejected_row(batch, record.row, reason));
                }
                Err(error) => failure = failure.or(Some(error)),
            }
        }
        // Where the object fails, none of this is committed: the next run imports it again, and the
        // idempotency keys and ids make every record land once, with its results recorded then.
        self.results.write(&results.finish())?;
        self.results.reject(&rejects)?;
        match failure {
            Some(error) => Err(self.error(error.to_string())),
            None => Ok(()),
        }
    }

    fn reject(&mut self, rejects: &[RejectedRow]) -> Result<(), SinkError> {
        self.results.reject(rejects)
    }

    fn commit(self: Box<Self>) -> Result<CommittedObject, SinkError> {
        self.results.commit()
    }
}
