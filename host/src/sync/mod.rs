//! Sync: a dataflow's run from listing to committed rows.
//!
//! - `check`: what `sluice check` proves before a deploy (plugins load, sources list, databases answer).
//! - [`plan`]: which listed objects a run imports (lookback, cursor, overlap, ledger).
//! - [`runner`]: one run: plan, then per object stream ─► decompress ─► format plugin ─► sink, each object
//!   committed with its marker; then the ledger, the cursor and the run's record.
//! - `stripe_source`: a run whose source is Stripe's API: objects listed page by page into a table each.
//! - [`preview`]: what the next run would import, and its first records, without writing anything.
//! - [`remove`]: a dataflow's table, ledger, cursor and history deleted.
//! - [`rollback`]: a dataflow's table back to where it was before its newest run.
//! - [`Registry`]: the sources and sinks an embedding program wrote in Rust, by name.

mod check;
pub mod plan;
pub mod preview;
mod registry;
mod remove;
mod rollback;
pub mod runner;
mod stores;
mod stripe_source;

pub use check::Checked;
pub use plan::{Decision, Plan, PlannedObject};
pub use preview::{Preview, Sample};
pub use registry::Registry;
pub use remove::remove;
pub use rollback::rollback;
pub use runner::{INTERRUPTED, ObjectReport, RunReport, Runner};
pub use stripe_source::StripeTablePreview;

use crate::config::ConfigError;
use crate::plugin::PluginError;
use crate::sink::SinkError;
use crate::source::{ObjectMeta, SourceError};
use crate::state::{LockError, StateError};
use std::sync::atomic::{AtomicU8, Ordering};

/// What the runner tells whoever watches a run. Every method has a default that does nothing.
pub trait Progress: Sync {
    /// The source was listed and the run planned.
    fn planned(&self, _dataflow: &str, _plan: &Plan) {}
    fn object_started(&self, _object: &ObjectMeta) {}
    /// `bytes` of the object (as stored, so compressed where it is) have been read, `rows` written.
    fn object_progress(&self, _object: &ObjectMeta, _bytes: u64, _rows: u64) {}
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

    pub fn draining(&self) -> bool {
        self.0.load(Ordering::SeqCst) >= DRAINING
    }

    pub fn aborting(&self) -> bool {
        self.0.load(Ordering::SeqCst) >= ABORTING
    }
}

/// Why a run could not start, or could not be recorded.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("dataflow `{dataflow}`: {source}")]
    Plugin { dataflow: String, source: PluginError },
    #[error("dataflow `{dataflow}`: {source}")]
    State { dataflow: String, source: StateError },
    #[error("dataflow `{dataflow}`: {source}")]
    Sink { dataflow: String, source: SinkError },
    #[error("dataflow `{dataflow}`: {source}")]
    Source { dataflow: String, source: SourceError },
    /// Another process runs the dataflow.
    #[error(transparent)]
    Locked(#[from] LockError),
    /// Listing or planning failed; the message names the dataflow and the source.
    #[error("{0}")]
    Plan(String),
}
