//! How Sluice writes dates and times as text, so that a date reads alike from Parquet, Avro or a
//! spreadsheet, whether a plugin wrote it or the host did (from a typed timestamp column of contract
//! 1.3.0): dates as `2026-11-05`, times of day as `13:45:00.250`, instants as RFC 3339 with `Z`, local
//! date-times the same without an offset (they name no instant), each with the digits of its unit.
//!
//! Digits are written by hand: `write!` with widths costs several times as much, and a file may hold
//! millions of timestamps. The writers take any [`fmt::Write`] (a `String`, or a `Formatter`).

use std::fmt::{self, Write};

/// The unit a time or timestamp counts in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeUnit {
    Second,
    Millisecond,
    Microsecond,
    Nanosecond,
}

impl TimeUnit {
    fn per_second(self) -> i64 {
        match self {
            TimeUnit::Second => 1,
            TimeUnit::Millisecond => 1_000,
            TimeUnit::Microsecond => 1_000_000,
            TimeUnit::Nanosecond => 1_000_000_000,
        }
    }

    /// Whole seconds and nanoseconds of `value` in this unit (the nanoseconds never negative).
    pub fn split(self, value: i64) -> (i64, u32) {
        let per_second = self.per_second();
        let nanos = value.rem_euclid(per_second) * (1_000_000_000 / per_second);
        (value.div_euclid(per_second), nanos as u32)
    }
}

/// The proleptic Gregorian date `days` after 1970-01-01, as year, month and day (Howard Hinnant's
/// `civil_from_days`, exact for every `i64` count a timestamp can hold).
fn civil(days: i64) -> (i64, u32, u32) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 { month_index + 3 } else { month_index - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Appends `2026-11-05`: the date `days` after 1970-01-01.
pub fn write_date(out: &mut impl Write, days: i64) -> fmt::Result {
    let (year, month, day) = civil(days);
    if (0..=9999).contains(&year) {
        let mut text = *b"0000-00-00";
        digits(&mut text[0..4], year as u64);
        digits(&mut text[5..7], u64::from(month));
        digits(&mut text[8..10], u64::from(day));
        out.write_str(std::str::from_utf8(&text).expect("ASCII digits"))
    } else {
        write!(out, "{year:04}-{month:02}-{day:02}")
    }
}

/// The date `days` after 1970-01-01.
pub fn date(days: i64) -> String {
    let mut text = String::with_capacity(10);
    write_date(&mut text, days).expect("a String takes any text");
    text
}

/// Writes `value`'s last `into.len()` decimal digits into `into`, zero-padded.
fn digits(into: &mut [u8], mut value: u64) {
    for place in into.iter_mut().rev() {
        *place = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// Appends an instant (`utc`, with `Z`) or a local date-time (without), `value` units after the epoch.
pub fn write_timestamp(out: &mut impl Write, value: i64, unit: TimeUnit, utc: bool) -> fmt::Result {
    let (seconds, nanos) = unit.split(value);
    write_date(out, seconds.div_euclid(86_400))?;
    write_clock(out, seconds.rem_euclid(86_400) as u64, nanos, unit)?;
    if utc { out.write_char('Z') } else { Ok(()) }
}

/// An instant (`utc`) or a local date-time, `value` units after the epoch.
pub fn timestamp(value: i64, unit: TimeUnit, utc: bool) -> String {
    let mut text = String::with_capacity(32);
    write_timestamp(&mut text, value, unit, utc).expect("a String takes any text");
    text
}

/// Appends `T13:45:00.250`: the time of day of a timestamp, with the digits of its unit.
pub fn write_clock(out: &mut impl Write, second_of_day: u64, nanos: u32, unit: TimeUnit) -> fmt::Result {
    let mut clock = *b"T00:00:00";
    digits(&mut clock[1..3], second_of_day / 3600);
    digits(&mut clock[4..6], second_of_day / 60 % 60);
    digits(&mut clock[7..9], second_of_day % 60);
    out.write_str(std::str::from_utf8(&clock).expect("ASCII digits"))?;
    write_fraction(out, nanos, unit)
}

/// The fraction of a second, with the digits of its unit (none for whole seconds).
fn write_fraction(out: &mut impl Write, nanos: u32, unit: TimeUnit) -> fmt::Result {
    let (value, width) = match unit {
        TimeUnit::Second => return Ok(()),
        TimeUnit::Millisecond => (nanos / 1_000_000, 3),
        TimeUnit::Microsecond => (nanos / 1_000, 6),
        TimeUnit::Nanosecond => (nanos, 9),
    };
    let mut fraction = *b".000000000";
    digits(&mut fraction[1..=width], u64::from(value));
    out.write_str(std::str::from_utf8(&fraction[..=width]).expect("ASCII digits"))
}

/// `13:45:00.250`: the time `value` units after midnight; an error outside the day.
pub fn time_of_day(value: i64, unit: TimeUnit) -> Result<String, String> {
    let (seconds, nanos) = unit.split(value);
    if !(0..86_400).contains(&seconds) {
        return Err(format!("a time of day out of range ({value})"));
    }
    let mut text = String::with_capacity(19);
    write_clock(&mut text, seconds as u64, nanos, unit).expect("a String takes any text");
    text.remove(0);
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_carry_the_digits_of_their_unit() {
        assert_eq!(timestamp(1_500, TimeUnit::Millisecond, true), "1970-01-01T00:00:01.500Z");
        assert_eq!(timestamp(-1, TimeUnit::Second, false), "1969-12-31T23:59:59");
        assert_eq!(timestamp(951_827_696_789, TimeUnit::Millisecond, true), "2000-02-29T12:34:56.789Z");
        assert_eq!(timestamp(-62_135_596_800, TimeUnit::Second, true), "0001-01-01T00:00:00Z");
        assert_eq!(
            timestamp(1_764_547_200_123_456_789, TimeUnit::Nanosecond, true),
            "2025-12-01T00:00:00.123456789Z"
        );
        assert_eq!(time_of_day(3_600_000_001, TimeUnit::Microsecond).unwrap(), "01:00:00.000001");
        assert!(time_of_day(86_400, TimeUnit::Second).is_err());
        assert_eq!(date(-1), "1969-12-31");
        assert_eq!(date(2_932_897), "10000-01-01");
    }
}
