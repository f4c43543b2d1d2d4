//! How a run shows itself: a progress bar per object on a terminal, plain lines otherwise.

use indicatif::{HumanBytes, ProgressBar, ProgressStyle};
use sluice::source::ObjectMeta;
use sluice::state::ObjectStatus;
use sluice::sync::{ObjectReport, Plan, Progress};
use std::io::IsTerminal;
use std::sync::Mutex;

pub struct RunProgress {
    dataflow: String,
    /// The bar of the object being loaded, on a terminal.
    bar: Mutex<Option<ProgressBar>>,
    terminal: bool,
}

impl RunProgress {
    pub fn new(dataflow: &str) -> RunProgress {
        RunProgress {
            dataflow: dataflow.to_string(),
            bar: Mutex::new(None),
            terminal: std::io::stderr().is_terminal(),
        }
    }
}

impl Progress for RunProgress {
    fn planned(&self, dataflow: &str, plan: &Plan) {
        let importing = plan.to_import().count();
        note!(
            "{dataflow}: {importing} of {} listed objects to import (window from {})",
            plan.listed,
            humantime::format_rfc3339_seconds(plan.window_start)
        );
    }

    fn object_started(&self, object: &ObjectMeta) {
        if self.terminal {
            let bar = ProgressBar::new(object.size).with_prefix(format!("{}: {}", self.dataflow, object.key));
            bar.set_style(
                ProgressStyle::with_template("{prefix} [{bar:30}] {bytes}/{total_bytes} {msg} ({elapsed})")
                    .expect("a valid template")
                    .progress_chars("=> "),
            );
            *self.bar.lock().expect("not poisoned") = Some(bar);
        }
    }

    fn object_progress(&self, _object: &ObjectMeta, bytes: u64, rows: u64) {
        if let Some(bar) = self.bar.lock().expect("not poisoned").as_ref() {
            bar.set_position(bytes);
            bar.set_message(format!("{rows} rows"));
        }
    }

    fn object_finished(&self, object: &ObjectMeta, report: &ObjectReport) {
        if let Some(bar) = self.bar.lock().expect("not poisoned").take() {
            bar.finish_and_clear();
        }
        match report.status {
            ObjectStatus::Loaded => note!(
                "{}: loaded {} ({} rows, {} rejected, {}, {:.2} s)",
                self.dataflow,
                object.key,
                report.rows,
                report.rejected,
                HumanBytes(report.bytes),
                report.elapsed.as_secs_f64()
            ),
            _ => note!(
                "{}: FAILED {}: {}",
                self.dataflow,
                object.key,
                report.error.as_deref().unwrap_or("no reason given")
            ),
        }
    }
}
