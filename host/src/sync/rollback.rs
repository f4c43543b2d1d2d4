//! `sluice rollback`: a dataflow's table back to where it was before its newest run.

use super::SyncError;
use super::runner::reconcile;
use super::stores::{DataflowStores, sink_error, state_error};
use crate::config::{Config, SourceConfig};
use crate::sink::RolledBack;

/// Undoes the newest run of `name` that changed its table: the run's rows, columns, rejected rows and
/// markers go in one transaction of the sink; then the ledger forgets the run's objects and the cursor
/// moves back before them, so the next run imports them again — or, with `skip`, the ledger marks them
/// skipped and the next run leaves them alone until they change. Rolling back twice undoes two runs.
/// Refused while the dataflow runs, and when no run is left to undo (nothing is changed then).
pub fn rollback(config: &Config, name: &str, skip: bool) -> Result<RolledBack, SyncError> {
    if let SourceConfig::Stripe(_) = config.dataflow(name)?.source {
        return Err(SyncError::Plan(format!(
            "dataflow `{name}` imports Stripe's objects, merged on `id` into a table each; rolling such a dataflow back is not supported yet (the next run merges Stripe's current objects in again)"
        )));
    }
    let mut stores = DataflowStores::open(config, name, config.dataflow(name)?)?;
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
