//! `sluice check`: the configuration, plugins, sources and databases, checked before a deploy.

use super::{Failure, load_dataflows, plugin_host, runtime};
use sluice::sync::Runner;
use std::path::Path;

pub fn check(config_path: Option<&Path>) -> Result<(), Failure> {
    let config = load_dataflows(config_path)?;
    out!("ok    configuration {} ({} dataflows)", config.path().display(), config.dataflows.len())?;
    let host = plugin_host(&config)?;
    let runtime = runtime()?;
    let checked = Runner::new(&config, &host, runtime.handle().clone()).check();
    let mut failed = Vec::new();
    for step in checked {
        match step.outcome {
            Ok(detail) => out!("ok    {}: {detail}", step.what)?,
            Err(reason) => {
                out!("FAIL  {}: {reason}", step.what)?;
                failed.push(step.what);
            }
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Failure::Input(format!("{} checks failed: {}", failed.len(), failed.join("; "))))
    }
}
