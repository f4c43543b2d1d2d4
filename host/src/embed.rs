//! Sluice inside another Rust program: the host built from a configuration file or from Rust values,
//! sources and sinks of the program's own, runs watched through [`Progress`], and records pulled as
//! batches rather than written anywhere.
//!
//! ```no_run
//! use sluice::config::{Config, DataflowConfig, FormatConfig, SinkConfig, SourceConfig};
//! use sluice::embed::Sluice;
//! use sluice::sync::Quiet;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // From Rust values: the folder `exports/orders` of CSV files into the table `orders` of a SQLite file.
//! let mut config = Config::new("/var/lib/acme");
//! config.add_dataflow(
//!     "Orders",
//!     DataflowConfig::new(SourceConfig::local("exports/orders"))
//!         .with_format(FormatConfig::plugin("csv").option("delimiter", ";"))
//!         .with_sink(SinkConfig::table("sqlite://warehouse.db", "orders")),
//! )?;
//! let sluice = Sluice::new(config)?;
//! let report = sluice.run("Orders", &Quiet)?;
//! println!("{} rows from {} objects", report.counts.rows, report.counts.objects);
//!
//! // Or the operators' own file.
//! let from_file = Sluice::from_file("connector.toml")?;
//! # Ok(()) }
//! ```
//!
//! A run blocks its thread while it works (it drives the plugins and the sinks on threads of its own, the
//! sources' I/O on a runtime the [`Sluice`] owns), so async code calls it from `spawn_blocking`.

use crate::batch::RecordBatch;
use crate::config::{Config, ConfigError, SourceConfig};
use crate::object::ObjectMeta;
use crate::plugin::{HostSettings, PluginHost, default_cache_dir};
use crate::sink::{RecordSink, RecordWriter, SinkError};
use crate::source::Source;
use crate::sync::{Checked, Preview, Progress, Quiet, Registry, RunReport, Runner, StopSignal, SyncError};
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

/// Batches a pulled run may have ready before the caller takes them.
const PULL_AHEAD: usize = 4;

/// Why a [`Sluice`] could not be made.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// The configuration is not valid; the error names the file (if any), line and key.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The plugin engine or the I/O runtime could not start.
    #[error("Sluice cannot start: {0}")]
    Start(String),
}

/// A Sluice host: a configuration, its plugins, the sources and sinks the program registered, and the
/// runtime sources do their I/O on. Cheap to share by reference between threads; runs of different
/// dataflows may go on at once, and a second run of one dataflow is refused (its run lock).
pub struct Sluice {
    config: Arc<Config>,
    host: Arc<PluginHost>,
    runtime: Arc<tokio::runtime::Runtime>,
    registry: Registry,
}

impl Sluice {
    /// A host for the dataflows of the configuration file at `path` (a `connector.toml`).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Sluice, EmbedError> {
        Sluice::new(Config::load(path.as_ref())?)
    }

    /// A host for `config`, read from a file or built from Rust values ([`Config::new`],
    /// [`Config::add_dataflow`]). Compiled plugins are cached where the configuration's `plugin_cache`
    /// says, else in the user's cache folder.
    pub fn new(config: Config) -> Result<Sluice, EmbedError> {
        let cache_dir = config.plugin_cache.clone().or_else(default_cache_dir);
        let host =
            PluginHost::new(HostSettings { cache_dir }).map_err(|e| EmbedError::Start(format!("{e:#}")))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("sluice-io")
            .enable_all()
            .build()
            .map_err(|e| EmbedError::Start(format!("the I/O runtime: {e}")))?;
        Ok(Sluice {
            config: Arc::new(config),
            host: Arc::new(host),
            runtime: Arc::new(runtime),
            registry: Registry::new(),
        })
    }

    /// The configuration the host runs.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Registers `source` as `name`, for dataflows whose source is `{ type = "custom", name = "NAME" }`
    /// ([`crate::config::SourceConfig::custom`]). Its objects are planned, parsed by the dataflow's
    /// format plugin and recorded in the ledger like any source's.
    pub fn register_source(&mut self, name: impl Into<String>, source: impl Source + 'static) -> &mut Sluice {
        self.registry.register_source(name, Arc::new(source));
        self
    }

    /// Registers `sink` as `name`, for dataflows whose sink is `{ type = "custom", name = "NAME" }`
    /// ([`crate::config::SinkConfig::custom`]).
    pub fn register_sink(&mut self, name: impl Into<String>, sink: impl RecordSink + 'static) -> &mut Sluice {
        self.registry.register_sink(name, Arc::new(sink));
        self
    }

    /// Runs the dataflow `name` now, telling `progress` as it plans, starts, reads and ends each object;
    /// returns how it went (each object's outcome and error included). An error here means the run could
    /// not start or be recorded; objects that fail are in the report.
    pub fn run(&self, name: &str, progress: &dyn Progress) -> Result<RunReport, SyncError> {
        self.runner().run(name, progress)
    }

    /// What the next run of `name` would import, with the first `limit` records of the first object,
    /// writing nothing (as `sluice preview`).
    pub fn preview(&self, name: &str, limit: usize) -> Result<Preview, SyncError> {
        self.runner().preview(name, limit)
    }

    /// Checks every dataflow before a deploy, writing nothing (as `sluice check`): its plugins load, its
    /// source lists, its sink answers (a custom one is registered).
    pub fn check(&self) -> Vec<Checked> {
        self.runner().check()
    }

    /// Runs the dataflow `name` with its records handed to the caller instead of its sink: the returned
    /// [`Pull`] yields each object's batches in order. An object is recorded loaded (the ledger and
    /// cursor move on, as in any run) once the caller has taken all of its batches and asks for what
    /// comes next; a [`Pull`] dropped before that leaves the object to the next run.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let sluice = sluice::embed::Sluice::from_file("connector.toml")?;
    /// let mut pull = sluice.pull("Orders")?;
    /// for pulled in pull.by_ref() {
    ///     println!("{}: {} rows", pulled.object, pulled.batch.num_rows());
    /// }
    /// let report = pull.finish()?;
    /// # Ok(()) }
    /// ```
    ///
    /// A dataflow whose source is Stripe's API (a table per Stripe object) cannot be pulled.
    pub fn pull(&self, name: &str) -> Result<Pull, SyncError> {
        if let SourceConfig::Stripe(_) = self.config.dataflow(name)?.source {
            return Err(SyncError::Plan(format!(
                "dataflow `{name}` reads Stripe's API into a table per object, and only a dataflow of files can be pulled"
            )));
        }
        let (sender, batches) = sync_channel(PULL_AHEAD);
        let registry = self.registry.sending_to(Arc::new(PullSink { sender }));
        let stop = Arc::new(StopSignal::new());
        let (config, host, runtime) = (self.config.clone(), self.host.clone(), self.runtime.clone());
        let (name, run_stop) = (name.to_string(), stop.clone());
        let run = std::thread::Builder::new()
            .name(format!("sluice-pull-{name}"))
            .spawn(move || {
                Runner::new(&config, &host, runtime.handle().clone())
                    .with_registry(&registry)
                    .with_stop(&run_stop)
                    .run(&name, &Quiet)
            })
            .expect("a thread can be started");
        Ok(Pull { batches: Some(batches), run: Some(run), stop })
    }

    fn runner(&self) -> Runner<'_> {
        Runner::new(&self.config, &self.host, self.runtime.handle().clone()).with_registry(&self.registry)
    }
}

/// One batch of a pulled run.
#[derive(Debug)]
pub struct Pulled {
    /// The key of the object the records come from.
    pub object: String,
    /// The records, as the format plugin (and the template, where the dataflow has one) made them.
    pub batch: RecordBatch,
}

/// A run whose batches the caller takes ([`Sluice::pull`]); an iterator of [`Pulled`].
pub struct Pull {
    batches: Option<Receiver<Handed>>,
    run: Option<JoinHandle<Result<RunReport, SyncError>>>,
    stop: Arc<StopSignal>,
}

impl Iterator for Pull {
    type Item = Pulled;

    fn next(&mut self) -> Option<Pulled> {
        let batches = self.batches.as_ref()?;
        loop {
            match batches.recv().ok()? {
                Handed::Batch(pulled) => return Some(pulled),
                // The caller has taken every batch of the object: it may be recorded loaded.
                Handed::Ended(committed) => {
                    let _ = committed.send(());
                }
            }
        }
    }
}

impl Pull {
    /// Waits for the run to end and returns its report. Batches not taken yet are given up, and their
    /// objects are left to the next run (the report says `interrupted`).
    pub fn finish(mut self) -> Result<RunReport, SyncError> {
        self.end().expect("a pull ends once")
    }

    fn end(&mut self) -> Option<Result<RunReport, SyncError>> {
        let run = self.run.take()?;
        if !run.is_finished() {
            // Whatever the caller did not take is not theirs yet: nothing more starts, the object in
            // flight is given up.
            self.stop.drain();
            self.stop.abort();
        }
        drop(self.batches.take());
        Some(run.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
    }
}

impl Drop for Pull {
    fn drop(&mut self) {
        let _ = self.end();
    }
}

/// What a pulled run hands to the caller's thread.
enum Handed {
    Batch(Pulled),
    /// An object's last batch has gone; the sender waits for the caller to ask past it.
    Ended(SyncSender<()>),
}

/// The sink of a pulled run: batches go over a bounded channel to the caller.
struct PullSink {
    sender: SyncSender<Handed>,
}

impl RecordSink for PullSink {
    fn begin_object(
        &self,
        _dataflow: &str,
        object: &ObjectMeta,
        _run_id: i64,
    ) -> Result<Box<dyn RecordWriter>, SinkError> {
        Ok(Box::new(PullWriter { sender: self.sender.clone(), object: object.key.clone() }))
    }
}

struct PullWriter {
    sender: SyncSender<Handed>,
    object: String,
}

impl PullWriter {
    fn gone(&self) -> SinkError {
        SinkError::table("pull", "the caller stopped taking batches")
    }
}

impl RecordWriter for PullWriter {
    fn write(&mut self, batch: RecordBatch) -> Result<(), SinkError> {
        let pulled = Pulled { object: self.object.clone(), batch };
        self.sender.send(Handed::Batch(pulled)).map_err(|_| self.gone())
    }

    fn commit(self: Box<Self>) -> Result<(), SinkError> {
        let (taken, caller) = sync_channel(1);
        self.sender.send(Handed::Ended(taken)).map_err(|_| self.gone())?;
        caller.recv().map_err(|_| self.gone())
    }
}
