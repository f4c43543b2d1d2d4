//! When a dataflow runs: its schedule made into slots on the time line, in its time zone, moved by its
//! share of the jitter.
//!
//! - `daily` and `daily at HH:MM` are the cron expression `M H * * *`; cron expressions take five fields,
//!   or six with seconds first. Both are evaluated in the schedule's time zone by croner over jiff, so a
//!   daily run stays at its wall-clock time across daylight-saving changes.
//! - `every 6h` is slots a fixed interval apart counted from the Unix epoch, so they are the same after a
//!   restart and need no memory of the last run.
//! - The jitter moves every slot of a dataflow later by the same amount, taken from a hash of its name:
//!   stable across restarts, spread across dataflows.

use crate::config::{Config, DataflowConfig, Schedule, parse_cron};
use croner::Cron;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use sha2::{Digest, Sha256};
use std::time::Duration;

/// The slots of one dataflow.
#[derive(Clone, Debug)]
pub struct Timetable {
    slots: Slots,
    /// The dataflow's share of the jitter: every slot is this much later.
    offset: SignedDuration,
}

#[derive(Clone, Debug)]
enum Slots {
    Manual,
    Cron { cron: Box<Cron>, zone: TimeZone },
    Every(SignedDuration),
}

impl Timetable {
    /// The timetable of the dataflow `name` under `config`'s `[daemon]` defaults.
    pub fn of(config: &Config, name: &str, dataflow: &DataflowConfig) -> Result<Timetable, String> {
        let defaults = &config.daemon;
        let zone_name = dataflow.time_zone.as_deref().unwrap_or(defaults.time_zone());
        let zone = TimeZone::get(zone_name).map_err(|e| format!("time zone `{zone_name}`: {e}"))?;
        let cron = |expression: String| -> Result<Slots, String> {
            Ok(Slots::Cron { cron: Box::new(parse_cron(&expression)?), zone: zone.clone() })
        };
        let slots = match &dataflow.schedule {
            Schedule::Manual => Slots::Manual,
            Schedule::Daily => {
                let (hour, minute) = defaults.daily_at();
                cron(format!("{minute} {hour} * * *"))?
            }
            Schedule::DailyAt { hour, minute } => cron(format!("{minute} {hour} * * *"))?,
            Schedule::Cron(expression) => cron(expression.clone())?,
            Schedule::Every(interval) => Slots::Every(signed(*interval)),
        };
        Ok(Timetable { slots, offset: jitter_offset(name, defaults.jitter()) })
    }

    /// Whether the dataflow runs only when asked.
    pub fn is_manual(&self) -> bool {
        matches!(self.slots, Slots::Manual)
    }

    /// The first slot strictly after `after`; none for a manual dataflow.
    pub fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        let shifted = after.checked_sub(self.offset).ok()?;
        let slot = match &self.slots {
            Slots::Manual => return None,
            Slots::Cron { cron, zone } => {
                cron.find_next_occurrence(&shifted.to_zoned(zone.clone()), false).ok()?.timestamp()
            }
            Slots::Every(interval) => {
                let periods = shifted.as_nanosecond().div_euclid(interval.as_nanos()) + 1;
                Timestamp::from_nanosecond(periods * interval.as_nanos()).ok()?
            }
        };
        slot.checked_add(self.offset).ok()
    }

    /// The latest slot at or before `at`; none for a manual dataflow.
    pub fn latest_at_or_before(&self, at: Timestamp) -> Option<Timestamp> {
        let shifted = at.checked_sub(self.offset).ok()?;
        let slot = match &self.slots {
            Slots::Manual => return None,
            Slots::Cron { cron, zone } => {
                cron.find_previous_occurrence(&shifted.to_zoned(zone.clone()), true).ok()?.timestamp()
            }
            Slots::Every(interval) => {
                let periods = shifted.as_nanosecond().div_euclid(interval.as_nanos());
                Timestamp::from_nanosecond(periods * interval.as_nanos()).ok()?
            }
        };
        slot.checked_add(self.offset).ok()
    }

    /// Whether a daemon starting at `now` runs the dataflow at once: it never ran (its first sync), or a
    /// slot passed since its last run began while no daemon was there to take it. However many slots
    /// passed, that is one run.
    pub fn missed(&self, last_run: Option<Timestamp>, now: Timestamp) -> bool {
        if self.is_manual() {
            return false;
        }
        match last_run {
            None => true,
            Some(last) => self.latest_at_or_before(now).is_some_and(|slot| slot > last),
        }
    }
}

/// A fixed share of `jitter` for the dataflow `name`, from a hash of the name.
fn jitter_offset(name: &str, jitter: Duration) -> SignedDuration {
    let millis = jitter.as_millis() as u64;
    if millis == 0 {
        return SignedDuration::ZERO;
    }
    let digest = Sha256::digest(name.as_bytes());
    let hash = u64::from_le_bytes(digest[..8].try_into().expect("8 bytes"));
    SignedDuration::from_millis((hash % millis) as i64)
}

fn signed(duration: Duration) -> SignedDuration {
    SignedDuration::try_from(duration).unwrap_or(SignedDuration::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn timetable(daemon: &str, schedule: &str) -> Timetable {
        let text = format!(
            "[daemon]\n{daemon}\n[dataflows.Orders]\nschedule = \"{schedule}\"\nsource = {{ type = \"local\", path = \".\" }}\nformat = {{ plugin = \"csv\" }}\n"
        );
        let config = Config::parse(&text, Path::new("connector.toml")).unwrap();
        Timetable::of(&config, "Orders", &config.dataflows["Orders"]).unwrap()
    }

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn daily_runs_at_the_configured_time_in_its_zone_across_daylight_saving() {
        let daily = timetable("time_zone = \"Europe/Berlin\"\ndaily_at = \"02:30\"", "daily");
        // 02:30 in Berlin is 00:30 UTC in summer and 01:30 UTC in winter.
        assert_eq!(daily.next_after(at("2026-07-01T12:00:00Z")), Some(at("2026-07-02T00:30:00Z")));
        assert_eq!(daily.next_after(at("2026-12-01T12:00:00Z")), Some(at("2026-12-02T01:30:00Z")));
        let plain = timetable("", "daily");
        assert_eq!(plain.next_after(at("2026-12-01T00:00:00Z")), Some(at("2026-12-02T00:00:00Z")));
        let at_time = timetable("", "daily at 03:15");
        assert_eq!(at_time.latest_at_or_before(at("2026-12-01T03:15:00Z")), Some(at("2026-12-01T03:15:00Z")));
    }

    #[test]
    fn intervals_count_from_the_epoch_and_cron_takes_seconds() {
        let every = timetable("", "every 6h");
        assert_eq!(every.next_after(at("2026-12-01T05:59:59Z")), Some(at("2026-12-01T06:00:00Z")));
        assert_eq!(every.next_after(at("2026-12-01T06:00:00Z")), Some(at("2026-12-01T12:00:00Z")));
        assert_eq!(every.latest_at_or_before(at("2026-12-01T07:00:00Z")), Some(at("2026-12-01T06:00:00Z")));
        let cron = timetable("", "*/10 * * * * *");
        assert_eq!(cron.next_after(at("2026-12-01T00:00:01Z")), Some(at("2026-12-01T00:00:10Z")));
        let weekdays = timetable("", "0 3 * * 1-5");
        // 2026-12-05 is a Saturday: the next weekday at 03:00 is Monday the 7th.
        assert_eq!(weekdays.next_after(at("2026-12-04T04:00:00Z")), Some(at("2026-12-07T03:00:00Z")));
    }

    #[test]
    fn a_missed_slot_is_one_run_and_manual_never_runs() {
        let daily = timetable("", "daily");
        let now = at("2026-12-10T12:00:00Z");
        assert!(daily.missed(None, now), "the first sync runs at once");
        assert!(daily.missed(Some(at("2026-12-01T12:00:00Z")), now), "nine slots passed: run once");
        assert!(!daily.missed(Some(at("2026-12-10T00:00:05Z")), now), "ran after today's slot");
        let manual = timetable("", "manual");
        assert!(!manual.missed(None, now));
        assert_eq!(manual.next_after(now), None);
    }

    #[test]
    fn jitter_moves_each_dataflow_by_a_stable_share() {
        let a = jitter_offset("Orders", Duration::from_secs(600));
        assert_eq!(a, jitter_offset("Orders", Duration::from_secs(600)));
        assert!(a < SignedDuration::from_secs(600));
        let spread: std::collections::HashSet<SignedDuration> =
            (0..20).map(|i| jitter_offset(&format!("Flow{i}"), Duration::from_secs(600))).collect();
        assert!(spread.len() > 15, "twenty names spread over ten minutes: {spread:?}");
        let jittered = timetable("jitter = \"10m\"", "daily");
        let offset = jitter_offset("Orders", Duration::from_secs(600));
        let slot = jittered.next_after(at("2026-12-01T12:00:00Z")).unwrap();
        assert_eq!(slot, at("2026-12-02T00:00:00Z").checked_add(offset).unwrap());
    }
}
