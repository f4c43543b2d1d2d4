//! Sluice: a config-file-driven data-connector runtime whose file formats are sandboxed WebAssembly
//! components.
//!
//! - [`config`]: `connector.toml`, read and checked.
//! - [`env`]: `${VAR}` in settings, and secrets kept out of logs.
//! - [`object`]: an object of a source, as every part of a run names it.
//! - [`source`]: where objects come from (S3, a local folder), listed and streamed.
//! - [`plugin`]: the wasmtime host that loads format plugins and data templates and runs them under memory and time limits.
//! - [`batch`]: record batches as plugins hand them over (column-major buffers).
//! - [`parse`]: streaming one file through a format plugin.
//! - [`sink`]: where records go (tables in SQLite or PostgreSQL, or Stripe objects).
//! - [`stripe`]: Stripe's API, through one careful client.
//! - [`pg`]: pooled PostgreSQL connections, shared by the sink and the state store.
//! - [`state`]: runs, the object ledger and cursors.
//! - [`sync`]: a dataflow's run: planning, then each object from source to sink, exactly once.
//! - [`time`]: times as Sluice stores them, milliseconds since 1970.
//! - [`overview`]: the dataflow list and each dataflow's run history, as users look at them.
//! - [`daemon`]: `sluice daemon`: schedules, live reload, the HTTP API, the dashboard page.
//! - [`metrics`]: what Sluice counts, for the daemon's `/metrics`.
//! - [`embed`]: Sluice inside another Rust program: its own sources and sinks, progress, pulled batches.
//!
//! # Embedding
//!
//! The `sluice` binary is one user of this library; a data platform is another. A host is built from a
//! `connector.toml` ([`embed::Sluice::from_file`]) or from Rust values, as here, where a folder of CSV
//! files goes through the bundled `csv` plugin (sandboxed, as always) into a sink the program wrote:
//!
//! ```
//! use sluice::batch::RecordBatch;
//! use sluice::config::{Config, DataflowConfig, FormatConfig, SinkConfig, SourceConfig};
//! use sluice::embed::Sluice;
//! use sluice::sink::{RecordSink, RecordWriter, SinkError};
//! use sluice::source::ObjectMeta;
//! use sluice::sync::Quiet;
//! use std::sync::{Arc, Mutex};
//!
//! /// Counts the rows of every object committed.
//! #[derive(Clone, Default)]
//! struct Counter(Arc<Mutex<usize>>);
//!
//! impl RecordSink for Counter {
//!     fn begin_object(&self, _: &str, _: &ObjectMeta, _: i64) -> Result<Box<dyn RecordWriter>, SinkError> {
//!         Ok(Box::new(Staged { counter: self.clone(), rows: 0 }))
//!     }
//! }
//!
//! /// One object's rows, counted only once it commits.
//! struct Staged { counter: Counter, rows: usize }
//!
//! impl RecordWriter for Staged {
//!     fn write(&mut self, batch: RecordBatch) -> Result<(), SinkError> {
//!         self.rows += batch.num_rows();
//!         Ok(())
//!     }
//!     fn commit(self: Box<Self>) -> Result<(), SinkError> {
//!         *self.counter.0.lock().unwrap() += self.rows;
//!         Ok(())
//!     }
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! std::fs::create_dir(dir.path().join("orders"))?;
//! std::fs::write(dir.path().join("orders/2026-12-01.csv"), "id,total\n1,9.50\n2,12.00\n")?;
//!
//! let mut config = Config::new(dir.path());
//! config.add_dataflow(
//!     "Orders",
//!     DataflowConfig::new(SourceConfig::local("orders"))
//!         .with_format(FormatConfig::plugin("csv"))
//!         .with_sink(SinkConfig::custom("counter")),
//! )?;
//! let counter = Counter::default();
//! let mut sluice = Sluice::new(config)?;
//! sluice.register_sink("counter", counter.clone());
//!
//! let report = sluice.run("Orders", &Quiet)?;
//! assert_eq!((report.counts.objects, report.counts.rows), (1, 2));
//! assert_eq!(*counter.0.lock().unwrap(), 2);
//! // The state ledger remembers the file: a second run takes nothing.
//! assert_eq!(sluice.run("Orders", &Quiet)?.counts.objects, 0);
//! # Ok(()) }
//! ```
//!
//! [`embed::Sluice::pull`] hands the batches to the caller instead, and
//! [`batch::RecordBatch::into_arrow`] makes each an Apache Arrow `RecordBatch` for DataFusion, Polars or
//! DuckDB, taking over Sluice's buffers where the layouts agree.

#![deny(missing_docs)]

pub mod allocator;
pub mod aws;
pub mod batch;
pub mod config;
pub mod daemon;
pub mod embed;
pub mod env;
pub mod metrics;
pub mod object;
pub mod overview;
pub mod parse;
pub mod pg;
pub mod plugin;
pub mod sink;
pub mod source;
pub mod sqlite;
pub mod state;
pub mod stripe;
pub mod sync;
pub mod time;
