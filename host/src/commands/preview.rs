//! `sluice preview`: the objects the next run would import, and its first records; with `--diff`, what
//! it would do to the Stripe objects its sink writes.

use super::{Failure, load_dataflows, plugin_host, runtime};
use indicatif::HumanBytes;
use sluice::config::SourceConfig;
use sluice::sync::{Action, Runner, StripeDiff};
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

/// What the next run of `name` would do to the Stripe objects its sink writes, over its first `limit`
/// records (`sluice preview --diff`).
pub fn diff(config_path: Option<&Path>, name: &str, limit: usize, json: bool) -> Result<(), Failure> {
    let config = load_dataflows(config_path)?;
    let host = plugin_host(&config)?;
    let runtime = runtime()?;
    let runner = Runner::new(&config, &host, runtime.handle().clone());
    let diff = runner.stripe_diff(name, limit)?;
    if json {
        out!("{}", serde_json::to_string_pretty(&diff).expect("a diff serializes"))?;
    } else {
        print_diff(name, &diff)?;
    }
    match diff.errors.is_empty() {
        true => Ok(()),
        false => Err(Failure::Input(diff.errors.join("\n"))),
    }
}

/// A diff as a table: a line per record, and under an update a line per field it changes.
fn print_diff(name: &str, diff: &StripeDiff) -> Result<(), Failure> {
    let count = |action: Action| diff.records.iter().filter(|r| r.action == action).count();
    out!(
        "{name}: the next run into Stripe {}: {} to create, {} to update, {} unchanged, {} rejected{}",
        diff.object,
        count(Action::Create),
        count(Action::Update),
        count(Action::Unchanged),
        diff.rejects.len(),
        if diff.capped { " (the first records only: --records N compares more)" } else { "" }
    )?;
    if diff.records.is_empty() && diff.rejects.is_empty() {
        return Ok(());
    }
    let key_width = diff.records.iter().map(|r| r.object.len()).max().unwrap_or(6).max(6);
    let id_width = diff.records.iter().map(|r| r.external_id.len()).max().unwrap_or(11).max(11);
    out!("{:9}  {:key_width$}  {:>6}  {:id_width$}  STRIPE ID", "ACTION", "OBJECT", "LINE", "EXTERNAL ID")?;
    for record in &diff.records {
        out!(
            "{:9}  {:key_width$}  {:>6}  {:id_width$}  {}",
            record.action.as_str(),
            record.object,
            record.line,
            record.external_id,
            record.stripe_id.as_deref().unwrap_or("-")
        )?;
        for change in &record.changes {
            let old = change.old.as_deref().unwrap_or("(unset)");
            let fixed = if change.create_only { "  (create only: the run replaces or refuses)" } else { "" };
            out!("           {}: {old} ─► {}{fixed}", change.field, change.new)?;
        }
    }
    for (object, reject) in &diff.rejects {
        out!("rejected   {object} line {}: {}", reject.line, reject.reason)?;
    }
    Ok(())
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
