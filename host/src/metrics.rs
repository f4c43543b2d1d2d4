//! What Sluice counts, named once: the library records through the `metrics` facade where things happen
//! (a plugin call, a Stripe request, the end of a run), and whoever installs a recorder sees them; the
//! daemon renders them in Prometheus' text format at `GET /metrics`. Without a recorder every call is a
//! no-op.

use std::time::{Duration, SystemTime};

/// Runs ended, by dataflow and status.
pub const RUNS: &str = "sluice_runs_total";
/// Objects (files, or a Stripe source's tables) a run finished, by dataflow.
pub const OBJECTS: &str = "sluice_objects_total";
/// Objects that failed, by dataflow.
pub const OBJECTS_FAILED: &str = "sluice_objects_failed_total";
/// Rows written, by dataflow.
pub const ROWS: &str = "sluice_rows_total";
/// Rows rejected, by dataflow.
pub const REJECTS: &str = "sluice_rejected_rows_total";
/// Bytes read from sources, by dataflow.
pub const BYTES: &str = "sluice_bytes_read_total";
/// Seconds per call into a plugin (a chunk fed, a file finished, a batch templated), by plugin.
pub const PLUGIN_CALL_SECONDS: &str = "sluice_plugin_call_seconds";
/// Requests sent to Stripe, by method and HTTP status (`network_error` where no answer came).
pub const STRIPE_REQUESTS: &str = "sluice_stripe_requests_total";
/// Messages of a dataflow's notification queue, by outcome: `received` (naming objects to load), `deleted`
/// (loaded), `kept` (to come back), `dropped` (naming nothing of the source), `test_event`.
pub const NOTIFICATIONS: &str = "sluice_notification_messages_total";
/// When a dataflow's last run that loaded everything ended, Unix seconds.
pub const LAST_SUCCESS: &str = "sluice_last_success_timestamp_seconds";

/// Describes every metric, for the `# HELP` lines; call once after installing a recorder.
pub fn describe() {
    metrics::describe_counter!(RUNS, "Runs ended, by dataflow and status");
    metrics::describe_counter!(OBJECTS, "Objects (files, or a Stripe source's tables) runs finished");
    metrics::describe_counter!(OBJECTS_FAILED, "Objects that failed");
    metrics::describe_counter!(ROWS, "Rows written to sinks");
    metrics::describe_counter!(REJECTS, "Rows rejected (by a parser, a template or Stripe)");
    metrics::describe_counter!(BYTES, "Bytes read from sources");
    metrics::describe_histogram!(PLUGIN_CALL_SECONDS, metrics::Unit::Seconds, "Time per call into a plugin");
    metrics::describe_counter!(STRIPE_REQUESTS, "Requests sent to Stripe, by method and HTTP status");
    metrics::describe_counter!(NOTIFICATIONS, "Messages of notification queues, by outcome");
    metrics::describe_gauge!(LAST_SUCCESS, metrics::Unit::Seconds, "When the last succeeded run ended");
}

pub(crate) fn plugin_call(plugin: &str, took: Duration) {
    metrics::histogram!(PLUGIN_CALL_SECONDS, "plugin" => plugin.to_string()).record(took.as_secs_f64());
}

pub(crate) fn stripe_request(method: &str, status: &str) {
    metrics::counter!(STRIPE_REQUESTS, "method" => method.to_string(), "status" => status.to_string())
        .increment(1);
}

/// Sets when `dataflow` last succeeded.
pub fn last_success(dataflow: &str, at: SystemTime) {
    let seconds = at.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_secs_f64();
    metrics::gauge!(LAST_SUCCESS, "dataflow" => dataflow.to_string()).set(seconds);
}

/// Counts `count` messages of `dataflow`'s notification queue that ended as `outcome`.
pub fn notifications(dataflow: &str, outcome: &'static str, count: usize) {
    if count > 0 {
        metrics::counter!(NOTIFICATIONS, "dataflow" => dataflow.to_string(), "outcome" => outcome)
            .increment(count as u64);
    }
}
