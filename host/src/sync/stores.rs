//! What a change to a dataflow holds while it works: the run lock, then the table sink and the state
//! store (for a Stripe sink, the tables its results go to). The lock comes first, so nothing is opened, let alone written, while another process runs the
//! dataflow.

use super::{Registry, SyncError};
use crate::config::{Config, DataflowConfig, SinkKind};
use crate::sink::{self, SinkError, StripeSink, TableSink};
use crate::state::{RunLock, StateError, StateStore, lock_dataflow};
use crate::stripe::StripeClient;

pub(super) struct DataflowStores {
    _lock: RunLock,
    pub sink: Box<dyn TableSink>,
    pub state: StateStore,
}

impl DataflowStores {
    /// Takes the run lock of `name`, then opens its sink (a custom one from `registry`) and the state
    /// store (creating them where missing).
    pub fn open(
        config: &Config,
        name: &str,
        dataflow: &DataflowConfig,
        registry: &Registry,
    ) -> Result<DataflowStores, SyncError> {
        let state_url = config.state_database();
        let lock = lock_dataflow(&state_url, name)?;
        let mut sink = match registry.sink(name, dataflow) {
            Some(custom) => custom,
            None => sink::open(&config.sink_database(dataflow), name, &dataflow.table_spec(name)),
        }
        .map_err(sink_error(name))?;
        if dataflow.sink.kind == SinkKind::Stripe {
            let (settings, target) = dataflow.sink.stripe();
            let client = StripeClient::new(settings)
                .map_err(|message| sink_error(name)(SinkError::stripe(target.object(), message)))?;
            sink = Box::new(StripeSink::new(sink, client, target, name).map_err(sink_error(name))?);
        }
        let state = StateStore::open(&state_url).map_err(state_error(name))?;
        Ok(DataflowStores { _lock: lock, sink, state })
    }
}

/// Refuses to `verb` (remove, roll back) what `name` wrote to a custom sink: it is the embedding program's
/// own, and Sluice knows nothing of what it keeps.
pub(super) fn refuse_custom_sink(name: &str, dataflow: &DataflowConfig, verb: &str) -> Result<(), SyncError> {
    if dataflow.sink.kind != SinkKind::Custom {
        return Ok(());
    }
    let sink = dataflow.sink.name.as_deref().unwrap_or_default();
    Err(SyncError::Plan(format!(
        "dataflow `{name}` writes to the custom sink `{sink}`, the embedding program's own: Sluice cannot {verb} what it holds"
    )))
}

/// The sink of one of a Stripe source's tables, under its scope (see `Config::dataflow_tables`).
pub(super) fn open_stripe_table(
    config: &Config,
    name: &str,
    dataflow: &DataflowConfig,
    scope: &str,
    table: String,
) -> Result<Box<dyn TableSink>, SinkError> {
    sink::open(&config.sink_database(dataflow), scope, &dataflow.stripe_table_spec(name, table))
}

/// A sink error of the dataflow `name`.
pub(super) fn sink_error(name: &str) -> impl Fn(SinkError) -> SyncError + '_ {
    move |source| SyncError::Sink { dataflow: name.to_string(), source }
}

/// A state error of the dataflow `name`.
pub(super) fn state_error(name: &str) -> impl Fn(StateError) -> SyncError + '_ {
    move |source| SyncError::State { dataflow: name.to_string(), source }
}
