//! The embedding API (`sluice::embed`): a host from Rust values, sources and sinks of the caller's own,
//! progress events, pulled batches; and a caller's sink that fails in the middle of an object.

use sluice::batch::RecordBatch;
use sluice::config::{
    Config, DataflowConfig, FormatConfig, Secret, SinkConfig, SourceConfig, StripeSourceConfig, WriteMode,
};
use sluice::embed::Sluice;
use sluice::sink::{RecordSink, RecordWriter, SinkError};
use sluice::source::{LocalSource, ObjectMeta};
use sluice::state::{ObjectStatus, RunStatus, StateStore};
use sluice::sync::{ObjectReport, Plan, Progress, Quiet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Rows of `rows` records `id,name` after a header.
fn csv(rows: usize) -> String {
    let mut text = String::from("id,name\n");
    for id in 0..rows {
        text.push_str(&format!("{id},name {id}\n"));
    }
    text
}

/// A folder `files` in `dir` holding, for each (name, rows), a CSV file of that many records.
fn files(dir: &Path, contents: &[(&str, usize)]) -> std::path::PathBuf {
    let files = dir.join("files");
    std::fs::create_dir(&files).unwrap();
    for (name, rows) in contents {
        std::fs::write(files.join(name), csv(*rows)).unwrap();
    }
    files
}

/// A host of the dataflow `Ledger` (see [`config`]) whose source is the folder `files` registered as the
/// custom source `files`, and whose sink is `kept`.
fn registered(dir: &Path, files: std::path::PathBuf, kept: &Kept) -> Sluice {
    let mut sluice = Sluice::new(config(dir, SourceConfig::custom("files"))).unwrap();
    sluice
        .register_source("files", LocalSource::new(files, String::new()))
        .register_sink("kept", kept.clone());
    sluice
}

/// A configuration from Rust values: the folder `files` of `dir`, read as CSV, into the caller's sink
/// `kept`, the state in `dir`.
fn config(dir: &Path, source: SourceConfig) -> Config {
    let mut config = Config::new(dir);
    config.state.url = Some("sqlite://state.db".into());
    config.plugin_cache = Some(dir.join("cache"));
    config
        .add_dataflow(
            "Ledger",
            DataflowConfig::new(source)
                .with_format(FormatConfig::plugin("csv"))
                .with_sink(SinkConfig::custom("kept")),
        )
        .expect("a valid dataflow");
    config
}

/// A sink that keeps each committed object's rows by key, and fails the write of the second batch of an
/// object named `fail_in` while `failing` holds.
#[derive(Clone, Default)]
struct Kept {
    committed: Arc<Mutex<Vec<(String, usize)>>>,
    fail_in: Option<String>,
    failing: Arc<AtomicBool>,
}

impl RecordSink for Kept {
    fn begin_object(&self, _: &str, object: &ObjectMeta, _: i64) -> Result<Box<dyn RecordWriter>, SinkError> {
        let fails = self.failing.load(Ordering::SeqCst) && self.fail_in.as_deref() == Some(&object.key);
        Ok(Box::new(KeptObject { sink: self.clone(), key: object.key.clone(), staged: 0, batches: 0, fails }))
    }
}

struct KeptObject {
    sink: Kept,
    key: String,
    staged: usize,
    batches: usize,
    fails: bool,
}

impl RecordWriter for KeptObject {
    fn write(&mut self, batch: RecordBatch) -> Result<(), SinkError> {
        self.batches += 1;
        if self.fails && self.batches == 2 {
            return Err(SinkError::table("kept", "the warehouse went away"));
        }
        self.staged += batch.num_rows();
        Ok(())
    }

    fn commit(self: Box<Self>) -> Result<(), SinkError> {
        self.sink.committed.lock().unwrap().push((self.key, self.staged));
        Ok(())
    }
}

fn ledger(sluice: &Sluice) -> Vec<(String, ObjectStatus, u64)> {
    let mut state = StateStore::open(&sluice.config().state_database()).unwrap();
    let mut entries: Vec<_> =
        state.ledger("Ledger").unwrap().into_iter().map(|e| (e.key, e.status, e.rows)).collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    entries
}

#[test]
fn a_dataflow_built_from_rust_values_is_checked_as_a_file_would_be() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new(dir.path());
    let merge_without_key = DataflowConfig::new(SourceConfig::local("files"))
        .with_format(FormatConfig::plugin("csv"))
        .with_sink(SinkConfig { mode: WriteMode::Merge, ..SinkConfig::table("sqlite://out.db", "out") });
    let error = config.add_dataflow("Orders", merge_without_key).unwrap_err().to_string();
    assert!(error.starts_with("`dataflows.Orders.sink.mode`: mode `merge` needs the columns"), "{error}");
    assert!(config.dataflows.is_empty(), "a refused dataflow is not kept");

    let unknown_plugin =
        DataflowConfig::new(SourceConfig::local("files")).with_format(FormatConfig::plugin("feather"));
    let error = config.add_dataflow("Orders", unknown_plugin).unwrap_err().to_string();
    assert!(error.contains("`dataflows.Orders.format.plugin`: unknown plugin `feather`"), "{error}");
    let bad_name = DataflowConfig::new(SourceConfig::custom("x")).with_format(FormatConfig::plugin("csv"));
    let error = config.add_dataflow("my-orders", bad_name).unwrap_err().to_string();
    assert!(error.contains("dataflow name `my-orders` is not allowed"), "{error}");

    // A valid one runs, into a SQLite table, with the relative paths taken from the folder given.
    files(dir.path(), &[("a.csv", 3)]);
    let table = DataflowConfig::new(SourceConfig::local("files"))
        .with_format(FormatConfig::plugin("csv").option("null_values", toml::Value::Array(vec!["".into()])))
        .with_sink(SinkConfig::table("sqlite://out.db", "orders"));
    config.state.url = Some("sqlite://state.db".into());
    config.add_dataflow("Orders", table).unwrap();
    let report = Sluice::new(config).unwrap().run("Orders", &Quiet).unwrap();
    assert_eq!((report.status, report.counts.rows), (RunStatus::Succeeded, 3), "{:?}", report.error);
    let rows: i64 = rusqlite::Connection::open(dir.path().join("out.db"))
        .unwrap()
        .query_row("SELECT count(*) FROM orders", [], |row| row.get(0))
        .unwrap();
    assert_eq!(rows, 3);
}

/// Progress events, as lines.
#[derive(Default)]
struct Events(Mutex<Vec<String>>);

impl Progress for Events {
    fn planned(&self, dataflow: &str, plan: &Plan) {
        self.0.lock().unwrap().push(format!("planned {dataflow}: {} to import", plan.to_import().count()));
    }
    fn object_started(&self, object: &ObjectMeta) {
        self.0.lock().unwrap().push(format!("started {}", object.key));
    }
    fn object_progress(&self, object: &ObjectMeta, _bytes: u64, rows: u64) {
        self.0.lock().unwrap().push(format!("progress {} {rows}", object.key));
    }
    fn object_finished(&self, object: &ObjectMeta, report: &ObjectReport) {
        self.0.lock().unwrap().push(format!("finished {} {:?} {}", object.key, report.status, report.rows));
    }
}

#[test]
fn a_registered_source_and_sink_carry_a_run_and_progress_events_come_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let files = files(dir.path(), &[("a.csv", 2), ("b.csv", 20_000)]);
    let kept = Kept::default();
    let sluice = registered(dir.path(), files, &kept);

    // Before the run: the check finds the registered source and sink, the preview what would come.
    let checked: Vec<String> = sluice
        .check()
        .into_iter()
        .map(|c| format!("{}: {}", c.what, c.outcome.unwrap_or_else(|e| e)))
        .collect();
    assert!(checked.contains(&"Ledger: sink custom `kept`: registered".to_string()), "{checked:?}");
    assert!(checked.iter().any(|c| c.ends_with("listed: 2 objects on the first page")), "{checked:?}");
    let preview = sluice.preview("Ledger", 1).unwrap();
    assert_eq!(preview.plan.to_import().count(), 2);

    let events = Events::default();
    let report = sluice.run("Ledger", &events).unwrap();
    assert_eq!((report.status, report.counts.rows), (RunStatus::Succeeded, 20_002), "{:?}", report.error);
    assert_eq!(*kept.committed.lock().unwrap(), [("a.csv".to_string(), 2), ("b.csv".to_string(), 20_000)]);
    assert_eq!(
        *events.0.lock().unwrap(),
        [
            "planned Ledger: 2 to import",
            "started a.csv",
            // The parser holds a short file's rows back to its end: the first chunk's call returns none.
            "progress a.csv 0",
            "progress a.csv 2",
            "finished a.csv Loaded 2",
            "started b.csv",
            // The whole file is one chunk; the rows in its last 64-byte block wait for its end.
            "progress b.csv 19998",
            "progress b.csv 20000",
            "finished b.csv Loaded 20000",
        ]
    );

    // The ledger is the record of what a custom sink holds: the next run takes nothing again.
    let again = sluice.run("Ledger", &Quiet).unwrap();
    assert_eq!((again.status, again.counts.objects), (RunStatus::Succeeded, 0));
    assert_eq!(kept.committed.lock().unwrap().len(), 2);
    // Removing or rolling back what the caller's sink holds is the caller's business.
    let refused = sluice::sync::remove(sluice.config(), "Ledger").unwrap_err().to_string();
    assert!(refused.contains("writes to the custom sink `kept`, the embedding program's own"), "{refused}");
}

#[test]
fn a_sink_that_fails_in_the_middle_of_an_object_fails_that_object_alone_and_keeps_nothing_of_it() {
    let dir = tempfile::tempdir().unwrap();
    let files = files(dir.path(), &[("a.csv", 5), ("b.csv", 40_000), ("c.csv", 7)]);
    let kept =
        Kept { fail_in: Some("b.csv".into()), failing: Arc::new(AtomicBool::new(true)), ..Kept::default() };
    let sluice = registered(dir.path(), files, &kept);

    let report = sluice.run("Ledger", &Quiet).unwrap();
    assert_eq!(report.status, RunStatus::Partial);
    let b = report.objects.iter().find(|o| o.key == "b.csv").unwrap();
    assert_eq!(b.status, ObjectStatus::Pending, "a sink's failure is not the object's: it is tried again");
    assert_eq!(
        b.error.as_deref(),
        Some("dataflow `Ledger`, object `b.csv`: writing table `kept` failed: the warehouse went away")
    );
    assert_eq!(report.counts.rows, 12, "a and c, nothing of b");
    assert_eq!(
        *kept.committed.lock().unwrap(),
        [("a.csv".to_string(), 5), ("c.csv".to_string(), 7)],
        "the first batch of b, written before the failure, was never committed"
    );
    let ledger_after_failure = ledger(&sluice);
    assert_eq!(
        ledger_after_failure,
        [
            ("a.csv".to_string(), ObjectStatus::Loaded, 5),
            ("b.csv".to_string(), ObjectStatus::Pending, 0),
            ("c.csv".to_string(), ObjectStatus::Loaded, 7),
        ]
    );

    kept.failing.store(false, Ordering::SeqCst);
    let next = sluice.run("Ledger", &Quiet).unwrap();
    assert_eq!((next.status, next.counts.objects, next.counts.rows), (RunStatus::Succeeded, 1, 40_000));
    assert_eq!(kept.committed.lock().unwrap().last(), Some(&("b.csv".to_string(), 40_000)));
    assert_eq!(ledger(&sluice)[1], ("b.csv".to_string(), ObjectStatus::Loaded, 40_000));
}

#[test]
fn a_custom_source_or_sink_nobody_registered_fails_the_run_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let sluice = Sluice::new(config(dir.path(), SourceConfig::custom("files"))).unwrap();
    let report = sluice.run("Ledger", &Quiet).unwrap_err().to_string();
    assert!(report.contains("dataflow `Ledger`"), "{report}");
    assert!(report.contains("no sink is registered as `kept` (none is registered)"), "{report}");

    let mut sluice = Sluice::new(config(dir.path(), SourceConfig::custom("files"))).unwrap();
    sluice.register_sink("kept", Kept::default());
    let report = sluice.run("Ledger", &Quiet).unwrap();
    assert_eq!(report.status, RunStatus::Failed);
    let error = report.error.unwrap();
    assert!(
        error.contains("dataflow `Ledger`: custom source `files`: no source is registered as `files`"),
        "{error}"
    );
}

#[test]
fn pulled_batches_come_per_object_and_only_what_the_caller_took_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let files = files(dir.path(), &[("a.csv", 20_000), ("b.csv", 3)]);
    let sluice = Sluice::new(config(dir.path(), SourceConfig::local("files"))).unwrap();

    let mut pull = sluice.pull("Ledger").unwrap();
    let pulled: Vec<(String, usize)> = pull.by_ref().map(|p| (p.object, p.batch.num_rows())).collect();
    assert_eq!(pulled, [("a.csv".into(), 19_998), ("a.csv".into(), 2), ("b.csv".into(), 3)]);
    let report = pull.finish().unwrap();
    assert_eq!((report.status, report.counts.rows), (RunStatus::Succeeded, 20_003));
    assert_eq!(sluice.pull("Ledger").unwrap().count(), 0, "the ledger moved on");

    // A caller that stops after one batch of an object: it is left to the next pull, whole.
    std::fs::write(files.join("c.csv"), csv(20_000)).unwrap();
    let mut pull = sluice.pull("Ledger").unwrap();
    let first = pull.next().unwrap();
    assert_eq!((first.object.as_str(), first.batch.num_rows()), ("c.csv", 19_998));
    let report = pull.finish().unwrap();
    assert_eq!(report.status, RunStatus::Interrupted, "{:?}", report.error);
    assert_eq!(ledger(&sluice)[2].1, ObjectStatus::Pending);
    let rows: usize = sluice.pull("Ledger").unwrap().map(|p| p.batch.num_rows()).sum();
    assert_eq!(rows, 20_000);

    let unknown = sluice.pull("Nope").err().unwrap().to_string();
    assert!(unknown.contains("no dataflow `Nope`; the dataflows are: Ledger"), "{unknown}");
    let mut config = Config::new(dir.path());
    let stripe = StripeSourceConfig {
        tables: vec!["customers".into()],
        api_key: Some(Secret::new("sk_test_embedding")),
        account: None,
        api_base: None,
        rate_limit: None,
        max_retries: None,
        lookback: None,
    };
    config.add_dataflow("Billing", DataflowConfig::new(SourceConfig::Stripe(stripe))).unwrap();
    let refused = Sluice::new(config).unwrap().pull("Billing").err().unwrap().to_string();
    assert!(refused.contains("only a dataflow of files can be pulled"), "{refused}");
}
