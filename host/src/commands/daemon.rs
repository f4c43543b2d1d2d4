//! `sluice daemon`: runs until stopped; see [`sluice::daemon`].

use super::{DEFAULT_CONFIG, Failure};
use sluice::daemon::DaemonError;
use std::path::Path;

pub fn daemon(config_path: Option<&Path>) -> Result<(), Failure> {
    let path = config_path.unwrap_or(Path::new(DEFAULT_CONFIG));
    sluice::daemon::run(path).map_err(|error| match error {
        DaemonError::Config(_) => Failure::Usage(error.to_string()),
        other => Failure::Input(other.to_string()),
    })
}
