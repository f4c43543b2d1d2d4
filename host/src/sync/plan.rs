//! Planning: which listed objects a run imports.
//!
//! The first run takes objects modified within the initial lookback. Later runs take objects modified
//! after the cursor, looking `overlap` before it again: S3's LastModified is when an upload began, so an
//! object can appear after a sync with a LastModified before that sync's cursor. The ledger (key + ETag)
//! keeps what the overlap lists again from being imported twice; an object whose ETag changed is a new
//! version and is imported again.

use crate::object::ObjectMeta;
use crate::state::{LedgerEntry, ObjectStatus};
use std::collections::{HashMap, HashSet};
use std::time::SystemTime;

/// What a run does with a listed object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Never seen: imported.
    New,
    /// Seen with another ETag: imported again as a new version.
    Changed,
    /// A run before could not read it (network, source): imported.
    Retry,
    /// Already loaded: left alone.
    AlreadyImported,
    /// Could not be read as its format before, unchanged since: left alone until it changes.
    FailedBefore,
    /// Failed before, read with other plugins (or builds, options or limits) then: imported again, as
    /// what made it fail may be what changed.
    ReadDifferently,
    /// Rolled back with `--skip`: left alone until it changes.
    Skipped,
}

impl Decision {
    /// Whether the run reads the object.
    pub fn imports(self) -> bool {
        matches!(self, Decision::New | Decision::Changed | Decision::Retry | Decision::ReadDifferently)
    }

    /// Whether the run takes the object even where it is older than the window: the cursor may have moved
    /// past it.
    fn at_any_age(self) -> bool {
        matches!(self, Decision::Retry | Decision::ReadDifferently)
    }

    /// The decision as `sluice preview` shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::New => "new",
            Decision::Changed => "changed",
            Decision::Retry => "retry",
            Decision::AlreadyImported => "already imported",
            Decision::FailedBefore => "failed before",
            Decision::ReadDifferently => "failed before, read differently now: retry",
            Decision::Skipped => "skipped",
        }
    }
}

/// A listed object inside the run's window, and what the run does with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedObject {
    /// The object as listed.
    pub object: ObjectMeta,
    /// What the run does with it.
    pub decision: Decision,
}

/// A run's plan.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Objects modified before this are outside the run.
    pub window_start: SystemTime,
    /// How many objects the source listed.
    pub listed: usize,
    /// The objects inside the window, oldest first.
    pub objects: Vec<PlannedObject>,
}

impl Plan {
    /// The objects the run imports, oldest first.
    pub fn to_import(&self) -> impl Iterator<Item = &ObjectMeta> {
        self.objects.iter().filter(|p| p.decision.imports()).map(|p| &p.object)
    }
}

/// How far back a run looks.
#[derive(Clone, Copy, Debug)]
pub struct Window {
    /// The moment the plan is made.
    pub now: SystemTime,
    /// The last run's cursor; `None` before the first run.
    pub cursor: Option<SystemTime>,
    /// How far back the first run looks.
    pub initial_lookback: std::time::Duration,
    /// How far before the cursor later runs look again.
    pub overlap: std::time::Duration,
}

impl Window {
    /// Objects modified before this are not taken: the cursor less the overlap, or now less the initial lookback.
    pub fn start(&self) -> SystemTime {
        let start = match self.cursor {
            None => self.now.checked_sub(self.initial_lookback),
            Some(cursor) => cursor.checked_sub(self.overlap),
        };
        start.unwrap_or(SystemTime::UNIX_EPOCH)
    }
}

/// Decides, for every listed object, whether the run imports it.
/// `reading` is how the run reads objects ([`ObjectOutcome::reader`](crate::state::ObjectOutcome)): an object
/// that failed when read another way is tried again. Objects left pending, or to be tried again, are taken
/// even where they are older than the window: the cursor moved past a failed object, as it was settled.
pub fn plan(listing: Vec<ObjectMeta>, ledger: &[LedgerEntry], window: Window, reading: Option<&str>) -> Plan {
    let versions: HashMap<(&str, &str), &LedgerEntry> =
        ledger.iter().map(|entry| ((entry.key.as_str(), entry.etag.as_str()), entry)).collect();
    let known_keys: HashSet<&str> = ledger.iter().map(|entry| entry.key.as_str()).collect();
    let window_start = window.start();
    let listed = listing.len();
    let mut objects: Vec<PlannedObject> = listing
        .into_iter()
        .map(|object| {
            let decision = match versions.get(&(object.key.as_str(), object.etag.as_str())) {
                Some(entry) => decide(entry, reading),
                None if known_keys.contains(object.key.as_str()) => Decision::Changed,
                None => Decision::New,
            };
            PlannedObject { object, decision }
        })
        .filter(|planned| planned.object.last_modified >= window_start || planned.decision.at_any_age())
        .collect();
    objects.sort_by(|a, b| {
        (a.object.last_modified, &a.object.key).cmp(&(b.object.last_modified, &b.object.key))
    });
    Plan { window_start, listed, objects }
}

/// What a run does with the version `entry` records, read as `reading` says.
fn decide(entry: &LedgerEntry, reading: Option<&str>) -> Decision {
    match (entry.status, entry.reader.as_deref()) {
        (ObjectStatus::Loaded, _) => Decision::AlreadyImported,
        (ObjectStatus::Failed, Some(before)) if reading.is_some_and(|now| now != before) => {
            Decision::ReadDifferently
        }
        (ObjectStatus::Failed, _) => Decision::FailedBefore,
        (ObjectStatus::Skipped, _) => Decision::Skipped,
        (ObjectStatus::Pending, _) => Decision::Retry,
    }
}

/// Whether a run takes the version `entry` records even where it is older than the window (see [`plan`]).
pub fn taken_at_any_age(entry: &LedgerEntry, reading: Option<&str>) -> bool {
    decide(entry, reading).at_any_age()
}

/// The cursor after a run: the newest LastModified below which every object of the window is settled.
/// `settled` says whether an object of the plan is settled now (loaded, or failed for good).
pub fn next_cursor(plan: &Plan, settled: impl Fn(&PlannedObject) -> bool) -> Option<SystemTime> {
    let oldest_unsettled = plan.objects.iter().filter(|p| !settled(p)).map(|p| p.object.last_modified).min();
    plan.objects
        .iter()
        .filter(|p| settled(p))
        .map(|p| p.object.last_modified)
        .filter(|modified| oldest_unsettled.is_none_or(|unsettled| *modified < unsettled))
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const DAY: Duration = Duration::from_secs(86_400);

    fn at(days: u32) -> SystemTime {
        SystemTime::UNIX_EPOCH + DAY * days
    }

    fn object(key: &str, etag: &str, day: u32) -> ObjectMeta {
        ObjectMeta { key: key.into(), size: 1, etag: etag.into(), last_modified: at(day) }
    }

    fn entry(key: &str, etag: &str, status: ObjectStatus) -> LedgerEntry {
        LedgerEntry {
            key: key.into(),
            etag: etag.into(),
            size: 1,
            last_modified: at(0),
            status,
            rows: 0,
            rejected: 0,
            error: None,
            reader: Some("csv, as first configured".into()),
            worker: None,
            run_id: 1,
        }
    }

    fn window(now: u32, cursor: Option<u32>) -> Window {
        Window { now: at(now), cursor: cursor.map(at), initial_lookback: DAY * 90, overlap: DAY }
    }

    fn decisions(plan: &Plan) -> Vec<(&str, Decision)> {
        plan.objects.iter().map(|p| (p.object.key.as_str(), p.decision)).collect()
    }

    #[test]
    fn the_first_run_takes_the_lookback_window() {
        let listing = vec![object("old", "a", 9), object("edge", "b", 10), object("recent", "c", 99)];
        let plan = plan(listing, &[], window(100, None), None);
        assert_eq!(decisions(&plan), [("edge", Decision::New), ("recent", Decision::New)]);
        assert_eq!(plan.listed, 3);
    }

    #[test]
    fn later_runs_take_what_is_after_the_cursor_less_what_the_ledger_holds() {
        let listing = vec![
            object("before-overlap", "a", 40),
            object("late-upload", "b", 49),
            object("loaded", "c", 50),
            object("changed", "d2", 50),
            object("failed", "e", 50),
            object("retry", "f", 50),
            object("fresh", "g", 51),
        ];
        let ledger = [
            entry("loaded", "c", ObjectStatus::Loaded),
            entry("changed", "d1", ObjectStatus::Loaded),
            entry("failed", "e", ObjectStatus::Failed),
            entry("retry", "f", ObjectStatus::Pending),
        ];
        let plan = plan(listing, &ledger, window(60, Some(50)), Some("csv, as first configured"));
        assert_eq!(
            decisions(&plan),
            [
                ("late-upload", Decision::New),
                ("changed", Decision::Changed),
                ("failed", Decision::FailedBefore),
                ("loaded", Decision::AlreadyImported),
                ("retry", Decision::Retry),
                ("fresh", Decision::New),
            ]
        );
    }

    #[test]
    fn a_failed_object_read_differently_now_and_a_pending_one_are_taken_even_before_the_window() {
        let listing =
            vec![object("failed-old", "a", 10), object("pending-old", "b", 10), object("failed", "c", 55)];
        let ledger = [
            entry("failed-old", "a", ObjectStatus::Failed),
            entry("pending-old", "b", ObjectStatus::Pending),
            entry("failed", "c", ObjectStatus::Failed),
        ];
        let unchanged =
            plan(listing.clone(), &ledger, window(60, Some(50)), Some("csv, as first configured"));
        assert_eq!(
            decisions(&unchanged),
            [("pending-old", Decision::Retry), ("failed", Decision::FailedBefore)]
        );
        let reconfigured = plan(listing, &ledger, window(60, Some(50)), Some("csv, with a fixed option"));
        assert_eq!(
            decisions(&reconfigured),
            [
                ("failed-old", Decision::ReadDifferently),
                ("pending-old", Decision::Retry),
                ("failed", Decision::ReadDifferently)
            ]
        );
    }

    #[test]
    fn the_cursor_stops_before_the_oldest_unsettled_object() {
        let listing = vec![object("a", "1", 10), object("b", "1", 20), object("c", "1", 30)];
        let plan = plan(listing, &[], window(31, None), None);
        assert_eq!(next_cursor(&plan, |_| true), Some(at(30)));
        assert_eq!(next_cursor(&plan, |p| p.object.key != "b"), Some(at(10)));
        assert_eq!(next_cursor(&plan, |p| p.object.key != "a"), None);
    }
}
