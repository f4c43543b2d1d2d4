//! `sluice preview`: the objects the next run would import, and its first records.

use super::{Failure, load_dataflows, plugin_host, runtime};
use indicatif::HumanBytes;
use sluice::config::SourceConfig;
use sluice::sync::Runner;
use std::path::Path;

pub fn preview(config_path: Option<&Path>, name: &str, records: usize) -> Result<(), Failure> {
    let config = load_dataflows(config_path)?;
    config.dataflow(name)?;
    let host = plugin_host(&config)?;
    let runtime = runtime()?;
    let runner = Runner::new(&config, &host, runtime.handle().clone());
    if let SourceConfig::Stripe(_) = config.dataflow(name)?.source {
        return preview_stripe(&runner, name);
    }
    let preview = runner.preview(name, records)?;
    let plan = &preview.plan;
    out!(
        "{name}: {} objects listed, {} in the window (modified since {}), {} to import",
        plan.listed,
        plan.objects.len(),
        humantime::format_rfc3339_seconds(plan.window_start),
        plan.to_import().count()
    )?;
    if !plan.objects.is_empty() {
        let width = plan.objects.iter().map(|p| p.object.key.len()).max().unwrap_or(3).max(3);
        out!("{:width$}  {:>10}  {:20}  STATUS", "KEY", "SIZE", "LAST MODIFIED")?;
        for planned in &plan.objects {
            out!(
                "{:width$}  {:>10}  {:20}  {}",
                planned.object.key,
                HumanBytes(planned.object.size).to_string(),
                humantime::format_rfc3339_seconds(planned.object.last_modified).to_string(),
                planned.decision.as_str()
            )?;
        }
    }
    let Some(sample) = preview.sample else { return Ok(()) };
    out!("\nFirst records of {}:", sample.key)?;
    for record in &sample.records {
        out!("{record}")?;
    }
    for reject in &sample.rejects {
        out!("rejected: line {}: {}", reject.line, reject.reason)?;
    }
    match sample.error {
        Some(error) => Err(Failure::Input(error)),
        None => Ok(()),
    }
}

/// A Stripe source's tables, with what Stripe holds and what the next run lists.
fn preview_stripe(runner: &Runner<'_>, name: &str) -> Result<(), Failure> {
    let tables = runner.preview_stripe(name)?;
    out!("{name}: Stripe, {} tables", tables.len())?;
    let width = tables.iter().map(|t| t.table.len()).max().unwrap_or(5).max(5);
    let object_width = tables.iter().map(|t| t.object.len()).max().unwrap_or(6).max(6);
    out!(
        "{:object_width$}  {:width$}  {:>9}  {:>14}  {:>8}",
        "OBJECT",
        "TABLE",
        "IN STRIPE",
        "NEXT RUN LISTS",
        "ROWS NOW"
    )?;
    for table in &tables {
        let rows = table.rows.map_or("-".to_string(), |rows| rows.to_string());
        out!(
            "{:object_width$}  {:width$}  {:>9}  {:>14}  {:>8}",
            table.object,
            table.table,
            table.in_stripe,
            table.to_list,
            rows
        )?;
    }
    Ok(())
}
