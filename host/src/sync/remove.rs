//! `sluice remove`: a dataflow's data deleted, its configuration kept.

use super::SyncError;
use super::registry::EMPTY;
use super::stores::{
    DataflowStores, lock, open_state, open_stripe_table, refuse_custom_sink, sink_error, state_error,
};
use crate::config::{Config, DataflowConfig, SourceConfig};

/// Removes the dataflow called `name`: its table, rejected rows, ledger, cursor and run history; returns
/// the rows its table held. The configuration is left as it is, so the next run starts from scratch.
/// Refused while the dataflow runs.
pub fn remove(config: &Config, name: &str) -> Result<u64, SyncError> {
    let dataflow = config.dataflow(name)?;
    if let SourceConfig::Stripe(_) = dataflow.source {
        return remove_tables(config, name, dataflow);
    }
    // Held whole, so the lock is kept to the end.
    refuse_custom_sink(name, dataflow, "remove")?;
    let mut stores = DataflowStores::open(config, name, dataflow, &EMPTY)?;
    // The sink first: were the process to stop between the two, the ledger would only say too much is
    // loaded, and the next run squares it with the emptied sink.
    let rows = stores.sink.remove().map_err(sink_error(name))?;
    stores.state.forget_dataflow(name).map_err(state_error(name))?;
    Ok(rows)
}

/// Removes a dataflow of a table per Stripe object: every table, then the state.
fn remove_tables(config: &Config, name: &str, dataflow: &DataflowConfig) -> Result<u64, SyncError> {
    let lock = lock(config, name)?;
    let mut rows = 0;
    for (scope, table) in config.dataflow_tables(name, dataflow) {
        rows += open_stripe_table(config, name, dataflow, &scope, table, lock.lease())
            .and_then(|mut sink| sink.remove())
            .map_err(sink_error(name))?;
    }
    let mut state = open_state(config, name, lock.lease())?;
    state.forget_dataflow(name).map_err(state_error(name))?;
    Ok(rows)
}
