//! Runs of the objects a bucket's event notifications name (see [`crate::source::Notifications`]): no
//! listing, and each message deleted only once the ledger has every object it names settled.
//!
//! A program that embeds Sluice reads a queue as the daemon does:
//!
//! ```no_run
//! # fn example(runner: &sluice::sync::Runner<'_>, notifications: std::sync::Arc<sluice::source::Notifications>,
//! #            runtime: &tokio::runtime::Handle) -> Result<(), Box<dyn std::error::Error>> {
//! let received = runtime.block_on(notifications.receive())?;
//! // Hidden from other consumers while the objects load, however long that takes.
//! let _visible = received.keep_visible(&notifications, runtime);
//! let ran = runner.run_events("Orders", &notifications, &received, &sluice::sync::Quiet)?;
//! println!("{} messages deleted, {} kept for another try", ran.deleted, ran.kept);
//! # Ok(()) }
//! ```

use super::{Progress, RunReport, Runner, SyncError};
use crate::object::ObjectMeta;
use crate::source::{Delivery, Notifications, Received};
use std::collections::HashSet;

/// How a run of received events ended.
#[derive(Debug)]
pub struct EventsReport {
    /// The run of their objects.
    pub run: RunReport,
    /// Messages deleted: each of their objects is settled.
    pub deleted: usize,
    /// Messages left to come back after their visibility timeout: an object of each is still pending (or
    /// the deletion failed), so it is tried again.
    pub kept: usize,
}

impl Runner<'_> {
    /// Runs the dataflow `name` on the objects `received` names, then deletes the messages whose objects
    /// the ledger has settled. Those it cannot delete come back and find their objects loaded.
    pub fn run_events(
        &self,
        name: &str,
        notifications: &Notifications,
        received: &Received,
        progress: &dyn Progress,
    ) -> Result<EventsReport, SyncError> {
        let (run, settled) = self.run_objects(name, received.objects(), progress)?;
        let unsettled: Vec<&ObjectMeta> =
            received.objects_once().filter(|o| !settled.contains(&(o.key.clone(), o.etag.clone()))).collect();
        let gone = self.gone(name, &unsettled);
        let (done, kept): (Vec<&Delivery>, Vec<&Delivery>) =
            received.deliveries.iter().partition(|delivery| {
                delivery.objects.iter().all(|o| {
                    let version = (o.key.clone(), o.etag.clone());
                    settled.contains(&version) || gone.contains(&version)
                })
            });
        for delivery in &kept {
            tracing::warn!(
                dataflow = name,
                message = delivery.message_id,
                receives = delivery.receive_count,
                "message kept: an object it names is not loaded yet; it comes back after the visibility timeout"
            );
        }
        let (mut deleted, mut kept) = (done.len(), kept.len());
        if let Err(error) = self.runtime().block_on(notifications.delete(&done)) {
            tracing::warn!(dataflow = name, "{error}; the messages come back and find their objects loaded");
            (deleted, kept) = (0, deleted + kept);
        }
        crate::metrics::notifications(name, "deleted", deleted);
        crate::metrics::notifications(name, "kept", kept);
        Ok(EventsReport { run, deleted, kept })
    }

    /// Of `objects` that did not load, the versions deleted or replaced since their events: their messages
    /// are done with (a replacement has an event of its own, and the listing finds it too).
    fn gone(&self, name: &str, objects: &[&ObjectMeta]) -> HashSet<(String, String)> {
        if objects.is_empty() {
            return HashSet::new();
        }
        let Ok(dataflow) = self.config().dataflow(name) else { return HashSet::new() };
        let Ok(source) = self.build_source(name, dataflow) else { return HashSet::new() };
        let mut gone = HashSet::new();
        for object in objects {
            // A member is there while the version of its archive is.
            let whole = crate::source::archive::Member::of(object).map(|member| member.archive);
            match self.runtime().block_on(source.still_there(whole.as_ref().unwrap_or(object))) {
                Ok(true) => {}
                Ok(false) => {
                    tracing::info!(
                        dataflow = name,
                        object = object.key,
                        "the version an event named is gone (deleted or replaced): its message is done with"
                    );
                    gone.insert((object.key.clone(), object.etag.clone()));
                }
                Err(error) => tracing::warn!(dataflow = name, "{error}"),
            }
        }
        gone
    }
}
