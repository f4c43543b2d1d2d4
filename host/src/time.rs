//! Times as Sluice stores them (the state's runs and ledger, the results tables' lineage, Delta's log):
//! milliseconds since 1970, signed, so that a time before it survives the round trip.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since 1970, the unit times are stored in.
pub fn millis(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => after.as_millis() as i64,
        Err(before) => -(before.duration().as_millis() as i64),
    }
}

/// The time `millis` milliseconds after the Unix epoch (as [`millis`] counts).
pub fn from_millis(millis: i64) -> SystemTime {
    if millis >= 0 {
        UNIX_EPOCH + Duration::from_millis(millis as u64)
    } else {
        UNIX_EPOCH - Duration::from_millis(millis.unsigned_abs())
    }
}
