//! The Stripe sink: each record becomes a Stripe object, created, or updated where the record's external
//! id was imported before. What Stripe answered goes to a results table in the dataflow's database
//! (external id, Stripe id, created or updated, request id), beside the object markers and rejected rows
//! a tables sink keeps, so a run's outcome per record can be read back, and the external id ─► Stripe id
//! map survives the process.
//!
//! Nothing is sent twice by accident: every write carries an idempotency key made of the dataflow, the
//! object's key and ETag, the record's line and the operation, so a retried request, or an object imported
//! again after a crash, meets Stripe's replay of the first answer instead of making a second object.

use super::{CommittedObject, ObjectWrite, RolledBack, SinkError, StoredReject, TableSink, rejected_row};
use crate::batch::RejectedRow;
use crate::batch::{BatchBuilder, RecordBatch, Value};
use crate::config::SinkConfig;
use crate::object::ObjectMeta;
use crate::stripe::{
    Answer, ClientSettings, ObjectSpec, OnChanged, StripeClient, StripeError, record_params,
};
use futures::StreamExt;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};

/// The columns of the results table, after Sluice's own. `create_only` holds the parameters of the record
/// that Stripe takes on create only, as sent: a later import compares against it to see them change.
const RESULT_COLUMNS: [&str; 5] = ["external_id", "stripe_id", "action", "request_id", "create_only"];

/// Which Stripe object records become, and how a record is known again.
#[derive(Clone, Debug)]
pub struct StripeTarget {
    /// What Sluice knows of the object: its API path, parameters and requirements.
    pub spec: &'static ObjectSpec,
    /// The record field (a dotted path) holding the caller's id.
    pub external_id: String,
    /// Requests in flight at once.
    pub concurrency: usize,
}

/// One record, ready to send.
pub struct Outgoing {
    row: usize,
    external_id: String,
    params: Vec<(String, String)>,
}

impl Outgoing {
    /// The id the caller knows the record by.
    pub fn external_id(&self) -> &str {
        &self.external_id
    }

    /// Its parameters, by their bracketed names (`metadata[sku]`).
    pub fn params(&self) -> &[(String, String)] {
        &self.params
    }
}

impl StripeTarget {
    /// What the Stripe sink `sink` writes (its configuration was checked when read), through a client with
    /// `settings`.
    pub fn of(sink: &SinkConfig, settings: &ClientSettings) -> StripeTarget {
        // Enough in flight to reach the rate at Stripe's usual few hundred milliseconds a write (a quarter of
        // the rate: 6 at 25/s, 25 at 100/s), never so many that a refused key costs many requests.
        let concurrency = sink.concurrency.unwrap_or((settings.rate_limit.get() as usize / 4).clamp(4, 32));
        StripeTarget { spec: sink.stripe_object(), external_id: sink.external_id_field(), concurrency }
    }

    /// The API path (`products`).
    pub fn object(&self) -> &'static str {
        self.spec.path
    }

    /// Whether the external id is Stripe's own `id` (products and coupons take a caller's id on create).
    pub(crate) fn caller_ids(&self) -> bool {
        self.external_id == "id"
    }

    /// The record at `row` as the sink sends it, or why the sink rejects it without a request: no external
    /// id to know it again by, or a record Stripe would refuse to create. `preview` asks the same.
    pub fn outgoing(&self, batch: &RecordBatch, row: usize) -> Result<Outgoing, String> {
        let key_column = batch.columns().iter().position(|c| c.name() == self.external_id);
        let external_id = match key_column.map(|c| batch.value(c, row)) {
            Some(Ok(Value::Text(text))) if !text.is_empty() => text.to_string(),
            Some(Ok(Value::Integer(i))) => i.to_string(),
            _ => {
                return Err(format!(
                    "field `{}` is empty: Sluice needs it to know the record again and update instead of duplicating",
                    self.external_id
                ));
            }
        };
        let params = record_params(batch, row).map_err(|error| error.to_string())?;
        match self.spec.refusal(&params) {
            Some(reason) => Err(reason),
            None => Ok(Outgoing { row, external_id, params }),
        }
    }

    /// The parameters of `record` that Stripe takes on create only (and that are not the record's
    /// identity), as JSON with sorted keys: what a later import compares against.
    pub(crate) fn create_only(&self, record: &Outgoing) -> String {
        let fixed: BTreeMap<&str, &str> = record
            .params
            .iter()
            .filter(|(name, _)| !self.spec.updates(name) && name != "id" && name != "expand")
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect();
        serde_json::to_string(&fixed).expect("strings serialize")
    }
}

/// The parameters that differ between two [`StripeTarget::create_only`] texts, each with its value
/// before and now (`None`: not given).
fn changes(before: &str, now: &str) -> Vec<(String, Option<String>, Option<String>)> {
    let read = |text: &str| serde_json::from_str::<BTreeMap<String, String>>(text).unwrap_or_default();
    let (mut before, mut now) = (read(before), read(now));
    let names: std::collections::BTreeSet<String> = before.keys().chain(now.keys()).cloned().collect();
    names
        .into_iter()
        .filter_map(|name| {
            let (old, new) = (before.remove(&name), now.remove(&name));
            (old != new).then_some((name, old, new))
        })
        .collect()
}

/// [`changes`] as `` `name` (before ─► after) ``.
fn described(changes: &[(String, Option<String>, Option<String>)]) -> String {
    let shown = |value: &Option<String>| value.as_deref().unwrap_or("unset").to_string();
    changes
        .iter()
        .map(|(name, old, new)| format!("`{name}` ({} ─► {})", shown(old), shown(new)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A sink whose records become Stripe objects, each created or updated through the API by its external
/// id; what Stripe answered goes into a results table.
pub struct StripeSink {
    /// The results table, markers and rejects.
    results: Box<dyn TableSink>,
    client: StripeClient,
    target: StripeTarget,
    dataflow: String,
    runtime: tokio::runtime::Runtime,
    /// What the results table says of each external id, read once and kept up to date as records land.
    known: Option<Known>,
}

/// What earlier imports made of each external id.
#[derive(Default)]
struct Known {
    /// External id ─► Stripe id (for objects whose ids Stripe makes).
    ids: HashMap<String, String>,
    /// External id ─► the create-only parameters it was created with ([`StripeTarget::create_only`]).
    create_only: HashMap<String, String>,
}

impl StripeSink {
    /// A Stripe sink writing through `client` to `target`, its results kept in `results` for `dataflow`.
    pub fn new(
        results: Box<dyn TableSink>,
        client: StripeClient,
        target: StripeTarget,
        dataflow: &str,
    ) -> Result<StripeSink, SinkError> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| {
            SinkError::stripe(target.object(), format!("the Stripe client's runtime could not start: {e}"))
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
        Err(SinkError::stripe(
            self.target.object(),
            format!(
                "a run into Stripe cannot be rolled back: the {} it created or changed are live in Stripe; change them there, or import the earlier file again",
                self.target.object()
            ),
        ))
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

    /// Fences the results table: calls to Stripe cannot be taken back, so the run stops calling Stripe
    /// (between batches) once it finds its lease lost; the results of a fenced-out run are not committed.
    fn fence(&mut self, token: i64) -> Result<(), SinkError> {
        self.results.fence(token)
    }

    fn begin_object<'s>(
        &'s mut self,
        object: &ObjectMeta,
        run_id: i64,
    ) -> Result<Box<dyn ObjectWrite + 's>, SinkError> {
        self.begin(object, run_id, None)
    }

    /// Sends rows again that Stripe (or a template) refused. Their requests carry idempotency keys of the
    /// replay's own: a key of the object's load would meet Stripe's replay of the refusal it answered then.
    fn begin_replay<'s>(
        &'s mut self,
        object: &ObjectMeta,
        run_id: i64,
        retried: &[StoredReject],
    ) -> Result<Box<dyn ObjectWrite + 's>, SinkError> {
        self.begin(object, run_id, Some(retried))
    }
}

impl StripeSink {
    /// Starts writing `object`'s records to Stripe: loaded from its file, or, where `replaying` holds
    /// its rejected rows, tried again from them.
    fn begin<'s>(
        &'s mut self,
        object: &ObjectMeta,
        run_id: i64,
        replaying: Option<&[StoredReject]>,
    ) -> Result<Box<dyn ObjectWrite + 's>, SinkError> {
        if self.known.is_none() {
            let ids = match self.target.caller_ids() {
                true => HashMap::new(),
                false => self.results.pairs("external_id", "stripe_id")?.into_iter().collect(),
            };
            let create_only = self.results.pairs("external_id", "create_only")?.into_iter().collect();
            self.known = Some(Known { ids, create_only });
        }
        let StripeSink { results, client, target, dataflow, runtime, known } = self;
        let mut key_base = format!("{dataflow}\0{}\0{}", object.key, object.etag);
        let results = match replaying {
            None => results.begin_object(object, run_id)?,
            Some(retried) => {
                key_base.push_str(&format!("\0replay {run_id}"));
                results.begin_replay(object, run_id, retried)?
            }
        };
        Ok(Box::new(StripeObjectWrite {
            results,
            client,
            target,
            runtime,
            known: known.get_or_insert_with(Known::default),
            key_base,
            landed: 0,
            refused: Vec::new(),
        }))
    }
}

struct StripeObjectWrite<'s> {
    results: Box<dyn ObjectWrite + 's>,
    client: &'s StripeClient,
    target: &'s StripeTarget,
    runtime: &'s tokio::runtime::Runtime,
    known: &'s mut Known,
    /// The dataflow, object key and ETag, the part of every idempotency key this object shares.
    key_base: String,
    /// Records of this object Stripe took so far.
    landed: u64,
    /// The rows of this object the sink refused so far (before sending, or as Stripe answered).
    refused: Vec<RejectedRow>,
}

/// A record Stripe took.
struct Landed {
    stripe_id: String,
    action: &'static str,
    request_id: Option<String>,
    create_only: String,
}

/// Why a record did not land.
enum Failed {
    /// Stripe refused this request (`operation`: create, update, ...): the row is rejected.
    Refused { operation: &'static str, error: StripeError },
    /// The record changes what Stripe cannot change, and no new object may stand in: the row is rejected.
    Unchangeable(String),
    /// Stripe cannot be reached, or refused the key: the object fails, and the records not yet sent wait.
    Stopped(StripeError),
    /// Not sent, as an earlier request of the object stopped it.
    NotSent,
}

impl Failed {
    fn of(operation: &'static str) -> impl Fn(StripeError) -> Failed {
        move |error| match error {
            StripeError::Refused { .. } => Failed::Refused { operation, error },
            other => Failed::Stopped(other),
        }
    }
}

impl StripeObjectWrite<'_> {
    fn error(&self, message: String) -> SinkError {
        SinkError::stripe(self.target.object(), message)
    }

    /// The idempotency key of one operation on one record of this object version.
    fn idempotency_key(&self, line: u64, operation: &str) -> String {
        let digest =
            Sha256::digest(format!("{}\0{line}\0{operation}\0{}", self.key_base, self.target.object()));
        // Half the digest (128 bits) is ample for a key, and keeps it short.
        format!("sluice-{}", &format!("{digest:x}")[..32])
    }

    /// Creates the object of one record, or updates (or replaces) the one an earlier import made.
    async fn send(&self, record: &Outgoing, line: u64) -> Result<Landed, Failed> {
        let object = self.target.object();
        let create_only = self.target.create_only(record);
        // Imported before: an object whose id the caller gives is known by it, any other by the id Stripe
        // gave it then.
        let known = match self.target.caller_ids() {
            true => {
                self.known.create_only.contains_key(&record.external_id).then(|| record.external_id.clone())
            }
            false => self.known.ids.get(&record.external_id).cloned(),
        };
        if let Some(stripe_id) = known {
            return self.update(record, stripe_id, create_only, line).await;
        }
        let key = self.idempotency_key(line, "create");
        match self.client.post(object, &record.params, &key).await {
            Ok(answer) => Ok(Landed {
                stripe_id: answer.body["id"].as_str().unwrap_or_default().to_string(),
                action: "created",
                request_id: answer.request_id,
                create_only,
            }),
            // A caller's id Stripe already holds: the record was imported before, so it updates.
            Err(error) if self.target.caller_ids() && error.code() == Some("resource_already_exists") => {
                self.update(record, record.external_id.clone(), create_only, line).await
            }
            Err(error) => Err(Failed::of("create")(error)),
        }
    }

    /// Updates `stripe_id` with the parameters of `record` that Stripe's update takes. Where the record
    /// changes one Stripe takes on create only, the object is replaced (a new one, the old archived) or
    /// the record refused, as the object's [`OnChanged`] says.
    async fn update(
        &self,
        record: &Outgoing,
        stripe_id: String,
        create_only: String,
        line: u64,
    ) -> Result<Landed, Failed> {
        let object = self.target.object();
        let before = self.known.create_only.get(&record.external_id).filter(|before| **before != create_only);
        if let Some(before) = before {
            let changes = changes(before, &create_only);
            let changed = described(&changes);
            let prices_only = changes.iter().all(|(name, _, _)| name.starts_with("default_price_data["));
            let on_changed = match self.target.spec.on_changed {
                OnChanged::NewDefaultPrice if !prices_only => OnChanged::Refuse,
                other => other,
            };
            if on_changed == OnChanged::NewDefaultPrice {
                return self.new_default_price(record, stripe_id, create_only, line, &changed).await;
            }
            if on_changed == OnChanged::Refuse {
                return Err(Failed::Unchangeable(format!(
                    "{object} `{}` was imported before with other values of what Stripe takes on create only: {changed}; Stripe cannot change them, so the row is refused (change the object in Stripe, or give the row a new `{}` to make a new one)",
                    record.external_id, self.target.external_id
                )));
            }
            // Stripe's way: a new object in place of the old, which is archived so nothing new uses it.
            let digest = Sha256::digest(&create_only);
            let key = self.idempotency_key(line, &format!("replace {stripe_id} {digest:x}"));
            let made =
                self.client.post(object, &record.params, &key).await.map_err(Failed::of("replacement"))?;
            self.archive(object, &stripe_id, line)
                .await
                .map_err(Failed::of("archiving of the replaced object"))?;
            tracing::info!(object, external_id = %record.external_id, "replaced {stripe_id}: {changed}");
            return Ok(Landed {
                stripe_id: made.body["id"].as_str().unwrap_or_default().to_string(),
                action: "replaced",
                request_id: made.request_id,
                create_only,
            });
        }
        let answer = self.post_update(record, &stripe_id, &[], line).await?;
        Ok(Landed { stripe_id, action: "updated", request_id: answer.request_id, create_only })
    }

    /// Archives the `object` `stripe_id` (`active=false`): nothing new can use it, and what does keeps it.
    async fn archive(&self, object: &str, stripe_id: &str, line: u64) -> Result<Answer, StripeError> {
        let archive = [("active".to_string(), "false".to_string())];
        let key = self.idempotency_key(line, &format!("archive {stripe_id}"));
        self.client.post(&format!("{object}/{stripe_id}"), &archive, &key).await
    }

    /// Updates `stripe_id` with the parameters of `record` that Stripe's update takes, and `extra`.
    async fn post_update(
        &self,
        record: &Outgoing,
        stripe_id: &str,
        extra: &[(String, String)],
        line: u64,
    ) -> Result<Answer, Failed> {
        let mut updatable: Vec<(String, String)> =
            record.params.iter().filter(|(name, _)| self.target.spec.updates(name)).cloned().collect();
        updatable.extend_from_slice(extra);
        let key = self.idempotency_key(line, "update");
        let path = format!("{}/{stripe_id}", self.target.object());
        self.client.post(&path, &updatable, &key).await.map_err(Failed::of("update"))
    }

    /// A product whose `default_price_data` changed: a new price for it from that data, made the
    /// product's `default_price` with the rest of the update, and the old default price archived.
    async fn new_default_price(
        &self,
        record: &Outgoing,
        product: String,
        create_only: String,
        line: u64,
        changed: &str,
    ) -> Result<Landed, Failed> {
        let digest = Sha256::digest(&create_only);
        let mut price = vec![("product".to_string(), product.clone())];
        price.extend(record.params.iter().filter_map(|(name, value)| {
            let field = name.strip_prefix("default_price_data[")?;
            // `default_price_data[recurring][interval]` is the price's `recurring[interval]`.
            let (head, rest) = field.split_once(']')?;
            Some((format!("{head}{rest}"), value.clone()))
        }));
        let key = self.idempotency_key(line, &format!("default price {digest:x}"));
        let made = self
            .client
            .post("prices", &price, &key)
            .await
            .map_err(Failed::of("creation of the new default price"))?;
        let new_price = made.body["id"].as_str().unwrap_or_default().to_string();
        let current =
            self.client.get(&format!("products/{product}"), &[]).await.map_err(Failed::of("reading"))?;
        let old_price =
            current.body["default_price"].as_str().filter(|old| *old != new_price).map(str::to_string);
        let answer = self
            .post_update(record, &product, &[("default_price".to_string(), new_price.clone())], line)
            .await?;
        if let Some(old_price) = old_price {
            self.archive("prices", &old_price, line)
                .await
                .map_err(Failed::of("archiving of the old default price"))?;
        }
        tracing::info!(product, "new default price {new_price}: {changed}");
        Ok(Landed { stripe_id: product, action: "updated", request_id: answer.request_id, create_only })
    }
}

impl ObjectWrite for StripeObjectWrite<'_> {
    fn write(&mut self, batch: &RecordBatch) -> Result<(), SinkError> {
        let mut rejects = Vec::new();
        let mut outgoing = Vec::with_capacity(batch.num_rows());
        for row in 0..batch.num_rows() {
            match self.target.outgoing(batch, row) {
                Ok(record) => outgoing.push(record),
                Err(reason) => rejects.push(rejected_row(batch, row, reason)),
            }
        }

        let this = &*self;
        let outgoing = &outgoing;
        // Set by the first request that shows Stripe cannot be reached or will not take the key: the
        // records after it are not sent, so a dead address costs one request's retries, not one per record.
        let stopped = AtomicBool::new(false);
        let stopped = &stopped;
        let send = |index: usize| async move {
            if stopped.load(Ordering::Relaxed) {
                return (index, Err(Failed::NotSent));
            }
            let record = &outgoing[index];
            let sent = this.send(record, batch.line(record.row)).await;
            if let Err(Failed::Stopped(_)) = sent {
                stopped.store(true, Ordering::Relaxed);
            }
            (index, sent)
        };
        let mut sent: Vec<(usize, Result<Landed, Failed>)> = self.runtime.block_on(async {
            let mut indexes = 0..outgoing.len();
            let mut sent = Vec::with_capacity(outgoing.len());
            // A key Stripe has not taken yet is tried on one record before the rest go out together.
            while !this.client.key_accepted() && !stopped.load(Ordering::Relaxed) {
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
            let reason = match landed {
                Ok(landed) => {
                    let request_id = landed.request_id.as_deref().map_or(Value::Null, Value::Text);
                    let values = [
                        Value::Text(&record.external_id),
                        Value::Text(&landed.stripe_id),
                        Value::Text(landed.action),
                        request_id,
                        Value::Text(&landed.create_only),
                    ];
                    results.push_row(line, &values);
                    self.landed += 1;
                    self.known.ids.insert(record.external_id.clone(), landed.stripe_id);
                    self.known.create_only.insert(record.external_id.clone(), landed.create_only);
                    continue;
                }
                Err(Failed::Refused { operation, error }) => format!(
                    "Stripe refused the {operation} of {} `{}`: {error}",
                    self.target.object(),
                    record.external_id
                ),
                Err(Failed::Unchangeable(reason)) => reason,
                Err(Failed::Stopped(error)) => {
                    failure = failure.or(Some(error));
                    continue;
                }
                Err(Failed::NotSent) => continue,
            };
            rejects.push(rejected_row(batch, record.row, reason));
        }
        // Where the object fails, none of this is committed: the next run imports it again, and the
        // idempotency keys and ids make every record land once, with its results recorded then.
        self.results.write(&results.finish())?;
        self.results.reject(&rejects)?;
        self.refused.extend(rejects);
        match failure {
            Some(error) => Err(self.error(error.to_string())),
            None => Ok(()),
        }
    }

    fn reject(&mut self, rejects: &[RejectedRow]) -> Result<(), SinkError> {
        self.results.reject(rejects)
    }

    /// Commits what Stripe answered, unless it refused every record: then the object fails, naming the
    /// first refusal, so the run says so (`partial`, exit 1) rather than succeeding with nothing sent.
    fn commit(self: Box<Self>) -> Result<CommittedObject, SinkError> {
        if self.landed == 0
            && let Some(first) = self.refused.first()
        {
            return Err(self.error(format!(
                "every record was refused ({} of them), none landed; the first, line {}: {}",
                self.refused.len(),
                first.line,
                first.reason
            )));
        }
        self.results.commit()
    }
}
