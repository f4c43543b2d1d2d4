//! `sluice rollback`: a dataflow's table back to where it was before its newest run.

use super::SyncError;
use super::load::reconcile;
use super::registry::EMPTY;
use super::stores::{
    DataflowStores, lock, open_state, open_stripe_table, refuse_custom_sink, sink_error, state_error,
};
use crate::config::{Config, DataflowConfig, SourceConfig};
use crate::sink::RolledBack;

/// Undoes the newest run of `name` that changed its table: the run's rows, columns, rejected rows and
/// markers go in one transaction of the sink; then the ledger forgets the run's objects and the cursor
/// moves back before them, so the next run imports them again — or, with `skip`, the ledger marks them
/// skipped and the next run leaves them alone until they change. Rolling back twice undoes two runs.
/// Refused while the dataflow runs, and when no run is left to undo (nothing is changed then).
pub fn rollback(config: &Config, name: &str, skip: bool) -> Result<RolledBack, SyncError> {
    let dataflow = config.dataflow(name)?;
    if let SourceConfig::Stripe(_) = dataflow.source {
        return rollback_tables(config, name, dataflow);
    }
    refuse_custom_sink(name, dataflow, "roll back")?;
    let mut stores = DataflowStores::open(config, name, dataflow, &EMPTY)?;
    let rolled_back = stores.sink.rollback_last().map_err(sink_error(name))?.ok_or_else(|| {
        SyncError::Plan(format!(
            "dataflow `{name}` has no run to roll back: its table holds nothing a run loaded"
        ))
    })?;
    stores.state.mark_rolled_back(rolled_back.run_id).map_err(state_error(name))?;
    if skip {
        stores
            .state
            .skip_objects_of_run(name, rolled_back.run_id, std::time::SystemTime::now())
            .map_err(state_error(name))?;
    }
    reconcile(name, &mut stores.state, stores.sink.as_mut()).map_err(SyncError::Plan)?;
    Ok(rolled_back)
}

/// Undoes the newest run of a dataflow of a table per Stripe object: every table that run changed goes
/// back, each in its own transaction, and forgets its cursor, so the next run lists the object again in
/// full and merges Stripe's current state over it.
fn rollback_tables(config: &Config, name: &str, dataflow: &DataflowConfig) -> Result<RolledBack, SyncError> {
    let lock = lock(config, name)?;
    let mut tables = Vec::new();
    for (scope, table) in config.dataflow_tables(name, dataflow) {
        let mut sink = open_stripe_table(config, name, dataflow, &scope, table, lock.lease())
            .map_err(sink_error(name))?;
        let newest = sink.newest_run().map_err(sink_error(name))?;
        tables.push((scope, sink, newest));
    }
    let Some(run_id) = tables.iter().filter_map(|(_, _, newest)| *newest).max() else {
        return Err(SyncError::Plan(format!(
            "dataflow `{name}` has no run to roll back: its tables hold nothing a run loaded"
        )));
    };
    let mut state = open_state(config, name, lock.lease())?;
    let mut rows_removed = 0;
    for (scope, mut sink, newest) in tables {
        if newest != Some(run_id) {
            continue;
        }
        if let Some(rolled_back) = sink.rollback_last().map_err(sink_error(name))? {
            rows_removed += rolled_back.rows_removed;
        }
        state.forget_cursor(&scope).map_err(state_error(name))?;
    }
    state.mark_rolled_back(run_id).map_err(state_error(name))?;
    Ok(RolledBack { run_id, rows_removed })
}
