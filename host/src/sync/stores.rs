//! What a change to a dataflow holds while it works: the run lock, then the table sink and the state
//! store (for a Stripe sink, the tables its results go to). The lock comes first, so nothing is opened, let alone written, while another process runs the
//! dataflow.

use super::{Registry, SyncError};
use crate::config::{Config, DataflowConfig, SinkKind};
use crate::sink::{self, SinkError, StripeSink, StripeTarget, TableSink, TableSpec};
use crate::state::{Lease, RunLock, StateError, StateStore, lock_dataflow};
use crate::stripe::StripeClient;
use std::sync::Arc;

pub(super) struct DataflowStores {
    lock: RunLock,
    pub sink: Box<dyn TableSink>,
    pub state: StateStore,
}

impl DataflowStores {
    /// Takes the run lock of `name`, then opens its sink (a custom one from `registry`) and the state
    /// store (creating them where missing), both fenced with the lease's token.
    pub fn open(
        config: &Config,
        name: &str,
        dataflow: &DataflowConfig,
        registry: &Registry,
    ) -> Result<DataflowStores, SyncError> {
        let lock = lock(config, name)?;
        let mut sink = match registry.sink(name, dataflow) {
            Some(custom) => custom,
            None => sink::open(&config.sink_database(dataflow), name, &TableSpec::of(dataflow, name)),
        }
        .map_err(sink_error(name))?;
        if dataflow.sink.kind == SinkKind::Stripe {
            let settings = dataflow.sink.client_settings();
            let target = StripeTarget::of(&dataflow.sink, &settings);
            let client = StripeClient::new(settings)
                .map_err(|message| sink_error(name)(SinkError::stripe(target.object(), message)))?;
            sink = Box::new(StripeSink::new(sink, client, target, name).map_err(sink_error(name))?);
        }
        sink.fence(lock.lease().token()).map_err(sink_error(name))?;
        let state = open_state(config, name, lock.lease())?;
        Ok(DataflowStores { lock, sink, state })
    }

    /// The lease the stores are held under.
    pub fn lease(&self) -> &Arc<Lease> {
        self.lock.lease()
    }
}

/// Takes the run lock (the lease) of the dataflow `name`.
pub(super) fn lock(config: &Config, name: &str) -> Result<RunLock, SyncError> {
    Ok(lock_dataflow(&config.state_database(), config.lease_timeout(), name)?)
}

/// The state store, its ledger writes fenced with `lease`.
pub(super) fn open_state(config: &Config, name: &str, lease: &Lease) -> Result<StateStore, SyncError> {
    let mut state = StateStore::open(&config.state_database()).map_err(state_error(name))?;
    state.fence_with(lease);
    Ok(state)
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

/// The sink of one of a Stripe source's tables, under its scope (see `Config::dataflow_tables`), fenced
/// with `lease`.
pub(super) fn open_stripe_table(
    config: &Config,
    name: &str,
    dataflow: &DataflowConfig,
    scope: &str,
    table: String,
    lease: &Lease,
) -> Result<Box<dyn TableSink>, SinkError> {
    let mut sink = sink::open(
        &config.sink_database(dataflow),
        scope,
        &TableSpec::of_stripe_table(dataflow, name, table),
    )?;
    sink.fence(lease.token())?;
    Ok(sink)
}

/// A sink error of the dataflow `name`.
pub(super) fn sink_error(name: &str) -> impl Fn(SinkError) -> SyncError + '_ {
    move |source| SyncError::Sink { dataflow: name.to_string(), source }
}

/// A state error of the dataflow `name`.
pub(super) fn state_error(name: &str) -> impl Fn(StateError) -> SyncError + '_ {
    move |source| SyncError::State { dataflow: name.to_string(), source }
}
