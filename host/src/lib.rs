//! Sluice: a config-file-driven data-connector runtime whose file formats are sandboxed WebAssembly
//! components.
//!
//! The modules stand on floors, each importing only from the floors below it, so that any one can be read
//! (and tested) knowing only what is under it:
//!
//! 1. The ground: the vocabulary every part speaks, importing nothing of Sluice.
//!    - [`object`]: an object of a source, as every part of a run names it.
//!    - [`time`]: times as Sluice stores them, milliseconds since 1970.
//!    - [`batch`]: record batches as plugins hand them over (column-major buffers), and rejected rows.
//!    - [`env`]: `${VAR}` in settings, and secrets kept out of logs.
//!    - [`metrics`]: what Sluice counts, for the daemon's `/metrics`.
//!    - [`pg`] and [`sqlite`]: database connections, shared by the sinks and the state store.
//!    - [`allocator`]: the process's memory allocator, tuned for buffers that cross threads.
//! 2. The world outside, each behind one careful client.
//!    - [`aws`]: access to S3 and S3-compatible stores.
//!    - [`stripe`]: Stripe's API.
//!    - [`plugin`]: the wasmtime host that loads format plugins and data templates and runs them under
//!      memory and time limits.
//! 3. What names and drives those clients.
//!    - [`config`]: `connector.toml`, read and checked.
//!    - [`parse`]: streaming one file through a format plugin.
//! 4. Where a run's records come from, where they go, and what runs remember.
//!    - [`source`]: where objects come from (S3, a local folder), listed and streamed.
//!    - [`sink`]: where records go (tables in SQLite, PostgreSQL or Delta Lake, or Stripe objects).
//!    - [`state`]: runs, the object ledger and cursors.
//! 5. Runs, and how users look at them.
//!    - [`sync`]: a dataflow's run: planning, then each object from source to sink, exactly once.
//!    - [`overview`]: the dataflow list and each dataflow's run history.
//! 6. The ways in.
//!    - [`daemon`]: `sluice daemon`: schedules, live reload, the HTTP API, the dashboard page.
//!    - [`embed`]: Sluice inside another Rust program: its own sources and sinks, progress, pulled
//!      batches.
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

// The floors, from the ground up (see above); `tests/floors.rs` holds every module to them.

// 1. The ground.
pub mod allocator;
pub mod batch;
pub mod env;
pub mod metrics;
pub mod object;
pub mod pg;
pub mod sqlite;
pub mod time;

// 2. The world outside.
pub mod aws;
pub mod plugin;
pub mod stripe;

// 3. What names and drives the clients.
pub mod config;
pub mod parse;

// 4. Sources, sinks and state.
pub mod sink;
pub mod source;
pub mod state;

// 5. Runs, and how users look at them.
pub mod overview;
pub mod sync;

// 6. The ways in.
pub mod daemon;
pub mod embed;
