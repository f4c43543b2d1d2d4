//! The objects of one run, each from source to sink: what they are loaded with ([`DataflowRun`]) and how.
//!
//! Per object, three things overlap: the source's bytes arrive on the async runtime, a parser thread runs
//! them through the format plugin, and this thread writes the batches into the object's transaction. The
//! object commits with its marker; only then does the ledger say it is loaded. A killed process therefore
//! leaves, at worst, a committed object the ledger does not know yet: the next run reads the sink's markers
//! first and records it.

use super::member_format::MemberFormats;
use super::object_input::{OpenFailure, open_input};
use super::{Progress, StopSignal};
use crate::config::DataflowConfig;
use crate::object::ObjectMeta;
use crate::parse::{ParseError, ParseSummary};
use crate::plugin::{FormatPlugin, Parsed, TemplatePlugin};
use crate::sink::{TableSink, TableSpec};
use crate::source::{Source, SourceError};
use crate::state::{Lease, LedgerEntry, ObjectOutcome, ObjectStatus, StateStore};
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, sync_channel};
use std::thread::ScopedJoinHandle;
use std::time::{Duration, Instant, SystemTime};
use tokio::runtime::Handle;

/// Calls' worth of batches the parser may run ahead of the writer.
const PARSED_AHEAD: usize = 2;

/// The error of an object given up because its run was asked to stop.
pub const INTERRUPTED: &str = "interrupted: the run was asked to stop before this object committed";

/// How one object of a run ended.
#[derive(Clone, Debug, PartialEq)]
pub struct ObjectReport {
    /// The object's key.
    pub key: String,
    /// How it stands after the run.
    pub status: ObjectStatus,
    /// Rows loaded from it.
    pub rows: u64,
    /// Rows of it refused.
    pub rejected: u64,
    /// Bytes read from the source (compressed, where the object is).
    pub bytes: u64,
    /// Why it failed or is pending, where it did not load.
    pub error: Option<String>,
    /// How long it took.
    pub elapsed: Duration,
}

/// How `dataflow` reads its objects now: a fingerprint of its format plugin and template (each by name,
/// build and limits), their options, the compression and the table it writes. The ledger keeps it with an
/// object that failed, so that a fix of any of them (a misspelled option, a higher memory limit, a template
/// that picks fewer columns) makes the object worth trying again, and nothing else does.
pub(super) fn reading(
    name: &str,
    dataflow: &DataflowConfig,
    plugin: &FormatPlugin,
    template: Option<&TemplatePlugin>,
) -> String {
    let format = dataflow.file_format();
    let mut read = format!(
        "{}\n{:?}\n{:?}\n{:?}",
        plugin.identity(),
        format.option_pairs(),
        format.compression,
        TableSpec::of(dataflow, name)
    );
    if let (Some(template), Some(config)) = (template, &dataflow.template) {
        read.push_str(&format!("\n{}\n{:?}", template.identity(), config.option_pairs()));
    }
    format!("{:x}", Sha256::digest(read))[..16].to_string()
}

/// One run of one dataflow: what each of its objects is loaded with.
pub(super) struct DataflowRun<'r> {
    pub name: &'r str,
    pub dataflow: &'r DataflowConfig,
    /// How its objects are read ([`reading`]).
    pub reading: String,
    pub plugin: &'r FormatPlugin,
    /// The formats of archive members that are not the dataflow's.
    pub member_formats: &'r MemberFormats<'r>,
    pub template: Option<&'r TemplatePlugin>,
    pub run_id: i64,
    pub progress: &'r dyn Progress,
    pub runtime: &'r Handle,
    pub stop: &'r StopSignal,
    /// The run's lease (a worker's claim, for a worker loading an object of the run): once it is lost,
    /// no further object is taken under it, and those in flight are given up.
    pub lease: &'r Lease,
}

impl DataflowRun<'_> {
    /// Whether the run must take no further object: it was asked to stop, or it lost its lease.
    pub fn halting(&self) -> bool {
        self.stop.draining() || self.lease.lost().is_some()
    }

    /// The report of `object`, left pending for `error` before it began.
    pub fn unloaded(&self, object: &ObjectMeta, error: String) -> ObjectReport {
        ObjectReport {
            key: object.key.clone(),
            status: ObjectStatus::Pending,
            rows: 0,
            rejected: 0,
            bytes: 0,
            error: Some(format!("dataflow `{}`, object `{}`: {error}", self.name, object.key)),
            elapsed: Duration::ZERO,
        }
    }

    /// Loads `objects` on as many threads as there are writers (`sink` and `others`), each object in its
    /// own transaction, and hands each outcome to `finish` on this thread as it comes. Objects that could
    /// not be loaded this time are returned instead, for another try.
    pub fn load_together<'o>(
        &self,
        source: &dyn Source,
        sink: &mut dyn TableSink,
        mut others: Vec<Box<dyn TableSink>>,
        objects: &[&'o ObjectMeta],
        finish: &mut dyn FnMut(&ObjectMeta, ObjectReport) -> Result<(), String>,
    ) -> Result<Vec<&'o ObjectMeta>, String> {
        let queue = std::sync::Mutex::new(objects.iter());
        let stop = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|scope| {
            let (sender, receiver) = std::sync::mpsc::channel();
            let mut writers: Vec<&mut dyn TableSink> = vec![sink];
            writers.extend(others.iter_mut().map(|w| -> &mut dyn TableSink { &mut **w }));
            for writer in writers {
                let (queue, stop, sender) = (&queue, &stop, sender.clone());
                scope.spawn(move || {
                    while !stop.load(Ordering::Relaxed) && !self.halting() {
                        let Some(object) = queue.lock().unwrap_or_else(|p| p.into_inner()).next() else {
                            break;
                        };
                        self.progress.object_started(object);
                        let outcome = self.load_object(source, writer, object);
                        if sender.send((*object, outcome)).is_err() {
                            break;
                        }
                    }
                });
            }
            drop(sender);
            let mut again = Vec::new();
            for (object, outcome) in receiver {
                if outcome.status == ObjectStatus::Pending {
                    again.push(object);
                } else if let Err(error) = finish(object, outcome) {
                    // The state store failed: the threads finish the objects they hold and take no more.
                    stop.store(true, Ordering::Relaxed);
                    return Err(error);
                }
            }
            Ok(again)
        })
    }

    /// Loads `object` alone: its parse on a thread of its own, its batches into `sink`.
    pub fn load_object(
        &self,
        source: &dyn Source,
        sink: &mut dyn TableSink,
        object: &ObjectMeta,
    ) -> ObjectReport {
        std::thread::scope(|scope| {
            let parsing = self.start_parse(scope, source, object);
            self.load_parsed(sink, object, parsing)
        })
    }

    /// Begins `object`'s download and parse on a thread of `scope`. Its batches wait in a bounded channel,
    /// a few calls' worth at most, until [`Self::load_parsed`] takes them into the sink.
    pub fn start_parse<'scope, 'env>(
        &'env self,
        scope: &'scope std::thread::Scope<'scope, 'env>,
        source: &'env dyn Source,
        object: &'env ObjectMeta,
    ) -> Parsing<'scope> {
        let (template, runtime) = (self.template, self.runtime);
        let compression = self.dataflow.file_format().compression;
        let (dataflow_plugin, member_formats) = (self.plugin, self.member_formats);
        let dataflow_options = self.dataflow.file_format().option_pairs();
        let template_options = self.dataflow.template.as_ref().map(|t| t.option_pairs()).unwrap_or_default();
        let bytes_read = Arc::new(AtomicU64::new(0));
        let count = bytes_read.clone();
        let (sender, parsed) = sync_channel::<Parsed>(PARSED_AHEAD);
        let parser = scope.spawn(move || {
            let (plugin, options) = match member_formats.other_than(dataflow_plugin, object) {
                None => (dataflow_plugin.clone(), dataflow_options),
                Some(other) => (other.map_err(ParseError::Open)?, Vec::new()),
            };
            let plugin = &plugin;
            let input =
                open_input(runtime, source, object, compression, plugin, count).map_err(|failure| {
                    match failure {
                        OpenFailure::Source(error) => Unparsed::Open(error),
                        OpenFailure::Read(error) => Unparsed::Parse(error),
                    }
                })?;
            let mut template = template
                .map(|t| t.open(&object.key, &template_options))
                .transpose()
                .map_err(ParseError::Open)?;
            let summary = input.parse(plugin, template.as_mut(), &object.key, &options, |parsed| {
                sender.send(parsed).map_err(|_| io::Error::other("the sink stopped taking records"))
            })?;
            Ok(summary)
        });
        Parsing { parsed, parser, bytes_read }
    }

    /// Takes `object`'s batches, as `parsing` hands them over, into the sink: all of them in one
    /// transaction, or none of them.
    pub fn load_parsed(
        &self,
        sink: &mut dyn TableSink,
        object: &ObjectMeta,
        parsing: Parsing<'_>,
    ) -> ObjectReport {
        let (name, progress) = (self.name, self.progress);
        let started = Instant::now();
        let Parsing { parsed: receiver, parser, bytes_read } = parsing;
        let mut report = ObjectReport {
            key: object.key.clone(),
            status: ObjectStatus::Pending,
            rows: 0,
            rejected: 0,
            bytes: 0,
            error: None,
            elapsed: Duration::ZERO,
        };
        let failed = |mut report: ObjectReport, status: ObjectStatus, error: String, bytes: &AtomicU64| {
            // The writer is dropped uncommitted: none of the rows written before the failure stays.
            (report.rows, report.rejected) = (0, 0);
            report.status = status;
            report.error = Some(format!("dataflow `{name}`, object `{}`: {error}", object.key));
            report.bytes = bytes.load(Ordering::Relaxed);
            report.elapsed = started.elapsed();
            report
        };
        let join = |parser: ScopedJoinHandle<'_, _>| parser.join().expect("the parser thread does not panic");
        // The first batches before the object begins in the sink: an object that cannot be opened, or
        // whose parse fails before it hands anything over, never begins there.
        let first = receiver.recv().ok();
        let (mut parser, mut ended) = (Some(parser), None);
        if first.is_none() {
            match parser.take().map(join) {
                Some(Err(error)) => {
                    let (status, why) = error.outcome();
                    return failed(report, status, why, &bytes_read);
                }
                summary => ended = summary,
            }
        }

        let mut writer = match sink.begin_object(object, self.run_id) {
            Ok(writer) => writer,
            Err(error) => return failed(report, ObjectStatus::Pending, error.to_string(), &bytes_read),
        };
        let mut aborted = None;
        let mut written = Ok(());
        for parsed in first.into_iter().chain(receiver.iter()) {
            if self.stop.aborting() {
                aborted = Some(INTERRUPTED.to_string());
                break;
            }
            if let Some(lost) = self.lease.lost() {
                aborted = Some(lost);
                break;
            }
            let rows = parsed.batches.iter().map(|b| b.num_rows() as u64).sum::<u64>();
            written = parsed
                .batches
                .into_iter()
                .try_for_each(|batch| writer.write_owned(batch))
                .and_then(|()| writer.reject(&parsed.rejects));
            if written.is_err() {
                // Dropping the receiver stops the parser at its next hand-over.
                break;
            }
            report.rows += rows;
            report.rejected += parsed.rejects.len() as u64;
            progress.object_progress(object, bytes_read.load(Ordering::Relaxed), report.rows);
        }
        drop(receiver);
        let parsed = match parser {
            Some(parser) => join(parser),
            None => ended.expect("joined where it handed nothing over"),
        };
        if let Some(why) = aborted {
            // The writer is dropped uncommitted: nothing of the object stays.
            return failed(report, ObjectStatus::Pending, why, &bytes_read);
        }
        if let Err(error) = written {
            // A database that went away is worth another run; a table the object can never fit is not.
            let status = if error.permanent { ObjectStatus::Failed } else { ObjectStatus::Pending };
            return failed(report, status, error.to_string(), &bytes_read);
        }
        if let Err(error) = parsed {
            let (status, why) = error.outcome();
            return failed(report, status, why, &bytes_read);
        }
        // Checked once more at the last moment: a claim taken over while the last batch was written.
        if let Some(lost) = self.lease.lost() {
            return failed(report, ObjectStatus::Pending, lost, &bytes_read);
        }
        match writer.commit() {
            Ok(committed) => {
                report.status = ObjectStatus::Loaded;
                report.rows = committed.rows;
                report.rejected = committed.rejected;
                report.bytes = bytes_read.load(Ordering::Relaxed);
                report.elapsed = started.elapsed();
                report
            }
            Err(error) => failed(report, ObjectStatus::Pending, error.to_string(), &bytes_read),
        }
    }
}

/// Squares the ledger with the sink's markers, which are the truth: an object the sink committed but the
/// ledger does not know as loaded (the process stopped between the two commits) is recorded; an object the
/// ledger has as loaded but the sink does not hold (the sink was emptied) is forgotten, to be imported again.
/// Returns the objects forgotten.
pub(super) fn reconcile(
    name: &str,
    state: &mut StateStore,
    sink: &mut dyn TableSink,
) -> Result<Vec<LedgerEntry>, String> {
    if !sink.keeps_markers() {
        return Ok(Vec::new());
    }
    let loaded: Vec<LedgerEntry> = state
        .ledger(name)
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|entry| entry.status == ObjectStatus::Loaded)
        .collect();
    let committed = sink.committed_objects().map_err(|e| e.to_string())?;
    let in_sink: HashSet<(&str, &str)> =
        committed.iter().map(|c| (c.key.as_str(), c.etag.as_str())).collect();
    let in_ledger: HashSet<(&str, &str)> = loaded.iter().map(|e| (e.key.as_str(), e.etag.as_str())).collect();

    let missing: Vec<LedgerEntry> =
        loaded.iter().filter(|e| !in_sink.contains(&(e.key.as_str(), e.etag.as_str()))).cloned().collect();
    if !missing.is_empty() {
        tracing::warn!(
            dataflow = name,
            objects = missing.len(),
            "the sink does not hold objects the ledger had as loaded; they will be imported again"
        );
        state.forget_objects(name, &missing).map_err(|e| e.to_string())?;
    }
    for committed in committed.iter().filter(|c| !in_ledger.contains(&(c.key.as_str(), c.etag.as_str()))) {
        let object = ObjectMeta {
            key: committed.key.clone(),
            size: committed.size,
            etag: committed.etag.clone(),
            last_modified: committed.last_modified,
        };
        tracing::info!(
            dataflow = name,
            object = object.key,
            "recording an object the sink committed before the last run stopped"
        );
        let outcome = ObjectOutcome {
            status: ObjectStatus::Loaded,
            rows: committed.rows,
            rejected: committed.rejected,
            bytes: committed.size,
            error: None,
            reader: None,
            worker: None,
        };
        state
            .record_object(name, &object, outcome, committed.run_id, SystemTime::now())
            .map_err(|e| e.to_string())?;
    }
    Ok(missing)
}

/// An object's parse, begun on a thread of its own ([`DataflowRun::start_parse`]).
pub(super) struct Parsing<'scope> {
    /// Its batches, as the parser hands them over.
    parsed: Receiver<Parsed>,
    parser: ScopedJoinHandle<'scope, Result<ParseSummary, Unparsed>>,
    /// Bytes read from the source so far.
    bytes_read: Arc<AtomicU64>,
}

/// Why an object's parse ended early: the source did not open it, or the parse failed.
#[derive(Debug)]
enum Unparsed {
    Open(SourceError),
    Parse(ParseError),
}

impl Unparsed {
    /// How the object stands after it, and why.
    fn outcome(self) -> (ObjectStatus, String) {
        match self {
            Unparsed::Open(error) => (ObjectStatus::Pending, error.to_string()),
            Unparsed::Parse(error @ (ParseError::Open(_) | ParseError::Plugin(_))) => {
                (ObjectStatus::Failed, error.to_string())
            }
            Unparsed::Parse(ParseError::Read { source, .. }) => {
                // Bytes that do not decompress are the object's fault; a connection that broke is not.
                let status = match source.kind() {
                    io::ErrorKind::InvalidData
                    | io::ErrorKind::InvalidInput
                    | io::ErrorKind::UnexpectedEof => ObjectStatus::Failed,
                    _ => ObjectStatus::Pending,
                };
                (status, format!("reading failed: {source}"))
            }
            Unparsed::Parse(error @ ParseError::Consume { .. }) => (ObjectStatus::Pending, error.to_string()),
        }
    }
}

impl From<ParseError> for Unparsed {
    fn from(error: ParseError) -> Unparsed {
        Unparsed::Parse(error)
    }
}
