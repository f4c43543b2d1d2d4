//! `sluice retry`: a dataflow's failed objects made pending again, so that its next run imports them.

use super::SyncError;
use super::stores::{lock, open_state, state_error};
use crate::config::Config;

/// Makes the failed objects of the dataflow `name` (all of them, or the versions of `key`) pending, under
/// its run lock, so that its next run imports them again whatever they failed with; loaded objects stay
/// as they are. Returns how many were failed. Refused while the dataflow runs.
pub fn retry(config: &Config, name: &str, key: Option<&str>) -> Result<u64, SyncError> {
    config.dataflow(name)?;
    let lock = lock(config, name)?;
    let mut state = open_state(config, name, lock.lease())?;
    state.retry_failed(name, key).map_err(state_error(name))
}
