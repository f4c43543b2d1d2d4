//! `sluice run`: runs dataflows now and ends with a summary (or, with `--replay-rejects`, tries a
//! dataflow's rejected rows again); `sluice retry`: the same, after making a dataflow's failed objects
//! pending.

use super::progress::RunProgress;
use super::{Failure, load_dataflows, plugin_host, runtime};
use indicatif::HumanBytes;
use sluice::config::SourceConfig;
use sluice::state::LockError;
use sluice::state::RunStatus;
use sluice::sync::{Runner, SyncError};
use std::path::Path;

/// Makes the failed objects of `name` (or those of `object`) pending, then runs it.
pub fn retry(config_path: Option<&Path>, name: &str, object: Option<&str>) -> Result<(), Failure> {
    let config = load_dataflows(config_path)?;
    let failed = sluice::sync::retry(&config, name, object)?;
    note!("{name}: {failed} failed objects to import again");
    if let (0, Some(object)) = (failed, object) {
        return Err(Failure::Usage(format!(
            "{name} has no failed object `{object}` (`sluice history {name} --run N` lists a run's objects)"
        )));
    }
    run(config_path, Some(name))
}

/// Tries the rejected rows of `name` again (`sluice run NAME --replay-rejects`).
pub fn replay_rejects(config_path: Option<&Path>, name: &str) -> Result<(), Failure> {
    let config = load_dataflows(config_path)?;
    let host = plugin_host(&config)?;
    let runtime = runtime()?;
    let runner = Runner::new(&config, &host, runtime.handle().clone());
    let replay = runner.replay_rejects(name, &RunProgress::new(name))?;
    let (report, counts) = (&replay.run, replay.run.counts);
    let _ = out!(
        "{name}: replay {} — {} rows tried again from {} objects: {} went through, {} rejected again, {:.2} s",
        report.status.as_str(),
        replay.retried,
        counts.objects,
        counts.rows,
        counts.rejected,
        report.elapsed.as_secs_f64()
    );
    if !replay.left.is_empty() {
        let mut why: Vec<&str> = replay.left.iter().map(|(_, why)| *why).collect();
        why.sort_unstable();
        why.dedup();
        note!(
            "{name}: {} rejected rows left as they are: {}; import their files again to read them anew",
            replay.left.len(),
            why.join("; ")
        );
    }
    match report.status {
        RunStatus::Succeeded => Ok(()),
        _ => Err(Failure::Input(format!("{name}: {}", report.error.clone().unwrap_or_default()))),
    }
}

pub fn run(config_path: Option<&Path>, only: Option<&str>) -> Result<(), Failure> {
    let config = load_dataflows(config_path)?;
    let names: Vec<String> = match only {
        Some(name) => vec![config.dataflow(name).map(|_| name.to_string())?],
        None => config.dataflows.keys().cloned().collect(),
    };
    let host = plugin_host(&config)?;
    let runtime = runtime()?;
    let runner = Runner::new(&config, &host, runtime.handle().clone());
    let (mut incomplete, mut busy) = (Vec::new(), Vec::new());
    for name in &names {
        let report = match runner.run(name, &RunProgress::new(name)) {
            Ok(report) => report,
            // Another process runs it: the others still run, and the exit status says "busy" (75) unless
            // one of them failed.
            Err(error @ SyncError::Locked(LockError::Held { .. })) => {
                busy.push(error.to_string());
                continue;
            }
            Err(error) => return Err(error.into()),
        };
        let counts = report.counts;
        // A Stripe source's run goes table by table; a file source's object by object.
        let unit = match config.dataflow(name)?.source {
            SourceConfig::Stripe(_) => "tables",
            _ => "objects",
        };
        // The summary is not the work: a reader that went away (`sluice run | head -1`) takes no dataflow's
        // run with it, and the exit status still says whether every dataflow loaded.
        let _ = out!(
            "{name}: {} — {} {unit}, {} rows, {} rejected, {}, {:.2} s",
            report.status.as_str(),
            counts.objects,
            counts.rows,
            counts.rejected,
            HumanBytes(counts.bytes),
            report.elapsed.as_secs_f64()
        );
        if report.status != RunStatus::Succeeded {
            incomplete.push(format!("{name}: {}", report.error.unwrap_or_default()));
        }
    }
    match (incomplete.is_empty(), busy.is_empty()) {
        (false, _) => Err(Failure::Input(incomplete.into_iter().chain(busy).collect::<Vec<_>>().join("\n"))),
        (true, false) => Err(Failure::Busy(busy.join("\n"))),
        (true, true) => Ok(()),
    }
}
