//! The scheduler: starts each dataflow's run when its slot comes.
//!
//! At start-up a dataflow that never ran, or whose slot passed since its last run began, runs at once:
//! once, however many slots were missed. After that each slot starts one run; a slot that comes while the
//! dataflow still runs (here or in another process) is let go, since that run is taking the data. A
//! reload keeps the next slot of every dataflow whose schedule is unchanged and works out the others anew.

use super::{Daemon, NotStarted, Trigger};
use jiff::Timestamp;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// The longest the scheduler sleeps before looking at the clock again, so that a clock set forward (or a
/// machine woken from sleep) is noticed.
const LONGEST_SLEEP: Duration = Duration::from_secs(30);

pub(super) async fn run(daemon: Arc<Daemon>) {
    let mut generation = daemon.generation();
    let now = Timestamp::now();
    let last_runs = tokio::task::block_in_place(|| daemon.last_run_starts(&generation.config));
    // The slot each dataflow runs at next, with the schedule it was worked out from.
    let mut due: HashMap<String, (Timestamp, String)> = HashMap::new();
    for (name, timetable) in &generation.timetables {
        let at = if timetable.missed(last_runs.get(name).copied(), now) {
            Some(now)
        } else {
            timetable.next_after(now)
        };
        if let Some(at) = at {
            due.insert(name.clone(), (at, schedule_of(&generation, name)));
        }
    }
    loop {
        // Registered before the work below, so a reload or stop during it is not missed.
        let changed = daemon.changed.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        if daemon.stopping() {
            return;
        }
        let current = daemon.generation();
        if current.number != generation.number {
            let now = Timestamp::now();
            due.retain(|name, (_, schedule)| {
                current.config.dataflows.contains_key(name) && *schedule == schedule_of(&current, name)
            });
            let last_runs = tokio::task::block_in_place(|| daemon.last_run_starts(&current.config));
            for (name, timetable) in &current.timetables {
                if due.contains_key(name) {
                    continue;
                }
                // A dataflow new to the configuration takes its first sync now, like one at start-up.
                let at = if timetable.missed(last_runs.get(name).copied(), now)
                    && !generation.config.dataflows.contains_key(name)
                {
                    Some(now)
                } else {
                    timetable.next_after(now)
                };
                if let Some(at) = at {
                    due.insert(name.clone(), (at, schedule_of(&current, name)));
                }
            }
            generation = current;
        }

        let now = Timestamp::now();
        for (name, (at, _)) in due.iter_mut() {
            if *at > now {
                continue;
            }
            match daemon.start_run(name, Trigger::Schedule) {
                Ok(()) | Err(NotStarted::Stopping) => {}
                Err(NotStarted::AlreadyActive(activity)) => {
                    tracing::info!(
                        dataflow = name,
                        ?activity,
                        "slot let go: the dataflow's run is still going"
                    );
                }
                Err(NotStarted::UnknownDataflow) => {}
            }
            let timetable = &generation.timetables[name];
            match timetable.next_after(now) {
                Some(next) => *at = next,
                None => *at = Timestamp::MAX,
            }
            tracing::debug!(dataflow = name, next = %at, "next slot");
        }

        let soonest = due.values().map(|(at, _)| *at).min();
        let sleep = soonest
            .and_then(|at| at.duration_since(Timestamp::now()).try_into().ok())
            .map_or(LONGEST_SLEEP, |wait: Duration| wait.min(LONGEST_SLEEP));
        tokio::select! {
            _ = tokio::time::sleep(sleep) => {}
            _ = changed => {}
        }
    }
}

/// The schedule of `name` as written with its time zone, to tell whether a reload changed it.
fn schedule_of(generation: &super::Generation, name: &str) -> String {
    let dataflow = &generation.config.dataflows[name];
    format!("{:?} {:?} {:?}", dataflow.schedule, dataflow.time_zone, generation.config.daemon)
}

/// The dataflow's next slot after now, from its timetable; `None` for a manual one.
pub(super) fn next_slot(generation: &super::Generation, name: &str) -> Option<Timestamp> {
    generation.timetables.get(name).and_then(|timetable| timetable.next_after(Timestamp::now()))
}
