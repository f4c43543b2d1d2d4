//! `sluice preview`: the objects the next run would import, and its first records.

use super::{Failure, load_dataflows, plugin_host, runtime};
use indicatif::HumanBytes;
use sluice::sync::Runner;
use std::path::Path;

pub fn preview(config_path: Option<&Path>, name: &str, records: usize) -> Result<(), Failure> {
    let config = load_dataflows(config_path)?;
    config.dataflow(name)?;
    let host = plugin_host(&config)?;
    let runtime = runtime()?;
    let runner = Runner::new(&config, &host, runtime.handle().clone());
    let preview = runner.preview(name, records)?;
    let plan = &preview.plan;
    println!(
        "{name}: {} objects listed, {} in the window (modified since {}), {} to import",
        plan.listed,
        plan.objects.len(),
        humantime::format_rfc3339_seconds(plan.window_start),
        plan.to_import().count()
    );
    if !plan.objects.is_empty() {
        let width = plan.objects.iter().map(|p| p.object.key.len()).max().unwrap_or(3).max(3);
        println!("{:width$}  {:>10}  {:20}  STATUS", "KEY", "SIZE", "LAST MODIFIED");
        for planned in &plan.objects {
            println!(
                "{:width$}  {:>10}  {:20}  {}",
                planned.object.key,
                HumanBytes(planned.object.size).to_string(),
                humantime::format_rfc3339_seconds(planned.object.last_modified).to_string(),
                planned.decision.as_str()
            );
        }
    }
    let Some(sample) = preview.sample else { return Ok(()) };
    println!("\nFirst records of {}:", sample.key);
    for record in &sample.records {
        println!("{record}");
    }
    for reject in &sample.rejects {
        println!("rejected: line {}: {}", reject.line, reject.reason);
    }
    match sample.error {
        Some(error) => Err(Failure::Input(error)),
        None => Ok(()),
    }
}
