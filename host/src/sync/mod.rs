//! Sync: a dataflow's run from listing to committed rows.
//!
//! - `check`: what `sluice check` proves before a deploy (plugins load, sources list, databases answer).
//! - [`plan`]: which listed objects a run imports (lookback, cursor, overlap, ledger).
//! - [`runner`]: one run: plan, then per object stream ─► decompress ─► format plugin ─► sink, each object
//!   committed with its marker; then the ledger, the cursor and the run's record.
//! - [`events`]: a run of the objects a bucket's event notifications name, and their messages deleted.
//! - `stripe_source`: a run whose source is Stripe's API: objects listed page by page into a table each.
//! - [`preview`]: what the next run would import, and its first records, without writing anything.
//! - [`remove`]: a dataflow's table, ledger, cursor and history deleted.
//! - [`rollback`]: a dataflow's table back to where it was before its newest run.
//! - [`Registry`]: the sources and sinks an embedding program wrote in Rust, by name.
//! - [`worker`]: workers in any number of processes sharing a run's objects through the state store.

mod check;
pub mod events;
mod load;
mod member_format;
mod object_input;
mod optimize;
pub mod plan;
pub mod preview;
mod registry;
mod remove;
mod replay;
mod retry;
mod rollback;
pub mod runner;
mod stores;
mod stripe_diff;
mod stripe_source;
pub mod worker;

pub use check::Checked;
pub use events::EventsReport;
pub use load::{INTERRUPTED, ObjectReport};
pub use member_format::member_format_other_than;
pub use optimize::optimize;
pub use plan::{Decision, Plan, PlannedObject};
pub use preview::{Preview, Sample};
pub use registry::Registry;
pub use remove::remove;
pub use replay::ReplayReport;
pub use retry::retry;
pub use rollback::rollback;
pub use runner::{RunReport, Runner};
pub use stripe_diff::{Action, FieldChange, RecordDiff, StripeDiff};
pub use stripe_source::StripeTablePreview;
pub use worker::{SharedObjects, Worker, WorkerPool};

use crate::config::ConfigError;
use crate::object::ObjectMeta;
use crate::plugin::PluginError;
use crate::sink::SinkError;
use crate::source::SourceError;
use crate::state::{LockError, StateError};
use std::sync::atomic::{AtomicU8, Ordering};

/// What the runner tells whoever watches a run. Every method has a default that does nothing.
pub trait Progress: Sync {
    /// The source was listed and the run planned.
    fn planned(&self, _dataflow: &str, _plan: &Plan) {}
    /// An object is about to be read.
    fn object_started(&self, _object: &ObjectMeta) {}
    /// `bytes` of the object (as stored, so compressed where it is) have been read, `rows` written.
    fn object_progress(&self, _object: &ObjectMeta, _bytes: u64, _rows: u64) {}
    /// An object ended: loaded, failed or left for the next run.
    fn object_finished(&self, _object: &ObjectMeta, _report: &ObjectReport) {}
}

/// A [`Progress`] that shows nothing.
pub struct Quiet;

impl Progress for Quiet {}

/// Asks runs to stop, in two steps: first take no new object (the ones in flight go on to commit), then
/// give up the objects in flight (their transactions roll back). A run stopped either way is recorded as
/// interrupted, and the next run imports what it left.
#[derive(Debug, Default)]
pub struct StopSignal(AtomicU8);

const RUNNING: u8 = 0;
const DRAINING: u8 = 1;
const ABORTING: u8 = 2;

impl StopSignal {
    /// A signal not raised yet.
    pub const fn new() -> StopSignal {
        StopSignal(AtomicU8::new(RUNNING))
    }

    /// Start no new object.
    pub fn drain(&self) {
        self.0.fetch_max(DRAINING, Ordering::SeqCst);
    }

    /// Give up the objects in flight too.
    pub fn abort(&self) {
        self.0.fetch_max(ABORTING, Ordering::SeqCst);
    }

    /// Whether runs are to start no new object.
    pub fn draining(&self) -> bool {
        self.0.load(Ordering::SeqCst) >= DRAINING
    }

    /// Whether runs are to give up the objects in flight.
    pub fn aborting(&self) -> bool {
        self.0.load(Ordering::SeqCst) >= ABORTING
    }
}

/// Why a run could not start, or could not be recorded.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The configuration has no such dataflow, or names a plugin it cannot find.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A plugin of the dataflow did not load, or its template refused its options.
    #[error("dataflow `{dataflow}`: {source}")]
    Plugin {
        /// The dataflow.
        dataflow: String,
        /// Why.
        source: PluginError,
    },
    /// The state store failed.
    #[error("dataflow `{dataflow}`: {source}")]
    State {
        /// The dataflow.
        dataflow: String,
        /// Why.
        source: StateError,
    },
    /// The sink could not be opened.
    #[error("dataflow `{dataflow}`: {source}")]
    Sink {
        /// The dataflow.
        dataflow: String,
        /// Why.
        source: SinkError,
    },
    /// The source could not be made.
    #[error("dataflow `{dataflow}`: {source}")]
    Source {
        /// The dataflow.
        dataflow: String,
        /// Why.
        source: SourceError,
    },
    /// Another process runs the dataflow.
    #[error(transparent)]
    Locked(#[from] LockError),
    /// Listing or planning failed; the message names the dataflow and the source.
    #[error("{0}")]
    Plan(String),
}
