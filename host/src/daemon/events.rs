//! The daemon's listeners on its dataflows' notification queues (`notifications = { queue_url }` on an S3
//! source): each receives its dataflow's events and runs the objects they name, within seconds and without
//! a listing. The dataflow's scheduled runs still list the bucket, to catch what the queue missed.
//!
//! Every daemon on a state store listens; a message is received by one of them. A run of events takes the
//! dataflow's lease like any run: one that finds the dataflow running (here, or in another process) keeps
//! its messages hidden and waits for it. A slot of the schedule that comes during a run of events is not
//! let go: it runs when that run ends, before the next events.

use super::Daemon;
use crate::config::{S3SourceConfig, SourceConfig};
use crate::source::{Notifications, Received};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// How long a listener waits before receiving again after the queue failed.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(5);
/// How often a run of events that found its dataflow busy tries again.
const BUSY_RETRY: Duration = Duration::from_millis(250);

/// Why a run of events did not start.
pub(super) enum NotRun {
    /// The dataflow runs now (here or elsewhere), or a slot of its schedule waits to: try again soon.
    Busy,
    /// The daemon is stopping, or the dataflow is gone from the configuration.
    Over,
}

/// A listener, as the supervisor keeps it: the source it was started for, and how to retire it.
struct Listener {
    source: String,
    retire: Arc<Notify>,
}

/// Keeps one listener per dataflow that has a queue, as the configuration in force says: started at start-up
/// and on a reload that adds one, retired on a reload that changes or removes it, and at a stop.
pub(super) async fn serve(daemon: Arc<Daemon>) {
    let mut listeners: HashMap<String, Listener> = HashMap::new();
    loop {
        let changed = daemon.changed.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        let wanted: HashMap<String, S3SourceConfig> = if daemon.stopping() {
            HashMap::new()
        } else {
            let generation = daemon.generation();
            let config = &generation.config;
            config
                .dataflows
                .iter()
                .filter_map(|(name, dataflow)| match &dataflow.source {
                    SourceConfig::S3(s3) if s3.notifications.is_some() => Some((name.clone(), s3.clone())),
                    _ => None,
                })
                .collect()
        };
        listeners.retain(|name, listener| {
            let current = wanted.get(name).is_some_and(|s3| format!("{s3:?}") == listener.source);
            if !current {
                listener.retire.notify_one();
            }
            current
        });
        for (name, s3) in wanted {
            if listeners.contains_key(&name) {
                continue;
            }
            let retire = Arc::new(Notify::new());
            let source = format!("{s3:?}");
            tokio::spawn(listen(daemon.clone(), name.clone(), s3, retire.clone()));
            listeners.insert(name, Listener { source, retire });
        }
        if daemon.stopping() {
            return;
        }
        changed.await;
    }
}

/// Receives `name`'s events and runs their objects until retired.
async fn listen(daemon: Arc<Daemon>, name: String, s3: S3SourceConfig, retire: Arc<Notify>) {
    let notifications = match Notifications::connect(&s3).await {
        Ok(notifications) => Arc::new(notifications),
        Err(error) => {
            tracing::error!(dataflow = name, "not listening for its events: {error}");
            return;
        }
    };
    tracing::info!(dataflow = name, queue = notifications.describe(), "listening for the bucket's events");
    loop {
        let received = tokio::select! {
            received = notifications.receive() => received,
            _ = retire.notified() => return,
        };
        let received = match received {
            Ok(received) => received,
            Err(error) => {
                tracing::warn!(dataflow = name, "{error}; receiving again in {RETRY_AFTER_FAILURE:?}");
                tokio::select! {
                    _ = tokio::time::sleep(RETRY_AFTER_FAILURE) => continue,
                    _ = retire.notified() => return,
                }
            }
        };
        crate::metrics::notifications(&name, "received", received.deliveries.len());
        crate::metrics::notifications(&name, "dropped", received.dropped);
        crate::metrics::notifications(&name, "test_event", received.test_events);
        if received.deliveries.is_empty() {
            continue;
        }
        let received = Arc::new(received);
        let _visible = received.keep_visible(&notifications, &daemon.runtime);
        loop {
            match daemon.clone().run_events(&name, notifications.clone(), received.clone()).await {
                Ok(()) => break,
                Err(NotRun::Busy) => {
                    tokio::select! {
                        _ = tokio::time::sleep(BUSY_RETRY) => continue,
                        _ = retire.notified() => {}
                    }
                }
                Err(NotRun::Over) => {}
            }
            // Retired or stopping with messages not run: back to the queue for another consumer, now.
            release(&notifications, &received).await;
            return;
        }
    }
}

/// Hands `received`'s messages back to the queue at once.
async fn release(notifications: &Notifications, received: &Received) {
    if let Err(error) = notifications.set_visibility(&received.deliveries, Duration::ZERO).await {
        tracing::warn!("{error}; the messages come back after their visibility timeout");
    }
}
