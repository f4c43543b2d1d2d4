//! An invoicing program that embeds Sluice: invoices arrive as JSON Lines documents in its own store (a
//! source written here), the bundled `jsonl` plugin reads them in its sandbox, and a sink written here keeps the
//! amount due per customer, computed on Apache Arrow arrays. Sluice's ledger makes a second run read
//! only what is new.
//!
//! `cargo run --release -p sluice-embed-example` (its test, `tests/runs.rs`, runs it under `cargo test`).

use async_trait::async_trait;
use sluice::batch::arrow_array::cast::AsArray;
use sluice::batch::arrow_array::types::Int64Type;
use sluice::config::{Config, DataflowConfig, FormatConfig, SinkConfig, SourceConfig};
use sluice::embed::Sluice;
use sluice::sink::{RecordSink, RecordWriter, SinkError};
use sluice::source::{ObjectMeta, ObjectReader, Source, SourceError};
use sluice::sync::{ObjectReport, Progress};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// A document of the store: when it arrived, and its bytes.
type Document = (SystemTime, Vec<u8>);

/// The program's own store of documents, by key.
#[derive(Clone, Default)]
struct Inbox(Arc<Mutex<BTreeMap<String, Document>>>);

impl Inbox {
    fn put(&self, key: &str, lines: &str) {
        self.0.lock().unwrap().insert(key.into(), (SystemTime::now(), lines.as_bytes().to_vec()));
    }
}

#[async_trait]
impl Source for Inbox {
    fn describe(&self) -> String {
        "the invoice inbox".into()
    }

    async fn list(&self) -> Result<Vec<ObjectMeta>, SourceError> {
        let documents = self.0.lock().unwrap();
        let meta = |(key, (modified, bytes)): (&String, &Document)| ObjectMeta {
            key: key.clone(),
            size: bytes.len() as u64,
            etag: format!("{}-{}", bytes.len(), key),
            last_modified: *modified,
        };
        Ok(documents.iter().map(meta).collect())
    }

    async fn open(&self, object: &ObjectMeta) -> Result<ObjectReader, SourceError> {
        let bytes = self.0.lock().unwrap().get(&object.key).map(|(_, bytes)| bytes.clone());
        let missing = || SourceError::Open {
            source_name: self.describe(),
            key: object.key.clone(),
            message: "gone".into(),
        };
        Ok(Box::new(std::io::Cursor::new(bytes.ok_or_else(missing)?)))
    }
}

/// Cents due per customer, over every invoice committed.
#[derive(Clone, Default)]
struct Totals(Arc<Mutex<BTreeMap<String, i64>>>);

impl RecordSink for Totals {
    fn begin_object(&self, _: &str, _: &ObjectMeta, _: i64) -> Result<Box<dyn RecordWriter>, SinkError> {
        Ok(Box::new(Invoice { totals: self.clone(), staged: BTreeMap::new() }))
    }
}

/// One invoice's amounts, kept aside until it commits: a failed invoice adds nothing.
struct Invoice {
    totals: Totals,
    staged: BTreeMap<String, i64>,
}

impl RecordWriter for Invoice {
    fn write(&mut self, batch: sluice::batch::RecordBatch) -> Result<(), SinkError> {
        let failed = |message: String| SinkError::table("totals", message);
        let batch = batch.into_arrow().map_err(|e| failed(e.to_string()))?;
        let column = |name| batch.column_by_name(name).ok_or_else(|| failed(format!("no column `{name}`")));
        let (customers, cents) = (column("customer")?.as_string::<i32>(), column("cents")?);
        let cents =
            cents.as_primitive_opt::<Int64Type>().ok_or_else(|| failed("cents are not integers".into()))?;
        for (customer, cents) in customers.iter().zip(cents.iter()) {
            *self.staged.entry(customer.unwrap_or("?").to_string()).or_default() += cents.unwrap_or(0);
        }
        Ok(())
    }

    fn commit(self: Box<Self>) -> Result<(), SinkError> {
        let mut totals = self.totals.0.lock().unwrap();
        for (customer, cents) in self.staged {
            *totals.entry(customer).or_default() += cents;
        }
        Ok(())
    }
}

/// Progress, as lines on stderr.
struct Log;

impl Progress for Log {
    fn object_finished(&self, object: &ObjectMeta, report: &ObjectReport) {
        match &report.error {
            Some(error) => eprintln!("{}: {:?}: {error}", object.key, report.status),
            None => eprintln!("{}: {:?}, {} rows", object.key, report.status, report.rows),
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let folder = tempfile::tempdir()?;
    let mut config = Config::new(folder.path());
    config.state.url = Some("sqlite://state.db".into());
    config.add_dataflow(
        "Invoices",
        DataflowConfig::new(SourceConfig::custom("inbox"))
            .with_format(FormatConfig::plugin("jsonl"))
            .with_sink(SinkConfig::custom("totals")),
    )?;
    let (inbox, totals) = (Inbox::default(), Totals::default());
    let mut sluice = Sluice::new(config)?;
    sluice.register_source("inbox", inbox.clone()).register_sink("totals", totals.clone());

    let line = |customer: &str, cents: i64| format!("{{\"customer\": \"{customer}\", \"cents\": {cents}}}\n");
    inbox.put("2026-11/0001.jsonl", &(line("acme", 1250) + &line("globex", 300) + &line("acme", 50)));
    inbox.put("2026-11/0002.jsonl", &line("globex", 700));
    let first = sluice.run("Invoices", &Log)?;
    inbox.put("2026-12/0003.jsonl", &line("acme", 1000));
    let second = sluice.run("Invoices", &Log)?;

    println!("run 1: {} invoices, {} rows", first.counts.objects, first.counts.rows);
    println!("run 2: {} invoices, {} rows", second.counts.objects, second.counts.rows);
    for (customer, cents) in totals.0.lock().unwrap().iter() {
        println!("{customer}: {}.{:02}", cents / 100, cents % 100);
    }
    Ok(())
}
