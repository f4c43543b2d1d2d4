//! Converting one value to a target field's type, with the reason a value does not fit.

use sluice_plugin_sdk::Value;

/// A target field's type.
pub enum Kind {
    Text,
    Integer,
    Boolean,
    /// A decimal amount in major units, made into minor units of its currency.
    Amount {
        currency: Option<String>,
        currency_column: Option<String>,
        allow_negative: bool,
    },
    Currency,
    Timestamp,
    Enum(Vec<String>),
}

/// A converted value.
pub enum Converted {
    Text(String),
    Integer(i64),
    Boolean(bool),
}

/// Converts `value`; `row_currency` is the row's value of an amount's `currency_column`.
pub fn convert(kind: &Kind, value: Value<'_>, row_currency: Option<Value<'_>>) -> Result<Converted, String> {
    match kind {
        Kind::Text => Ok(Converted::Text(text(value))),
        Kind::Integer => integer(value).map(Converted::Integer),
        Kind::Boolean => boolean(value).map(Converted::Boolean),
        Kind::Currency => currency(&text(value)).map(Converted::Text),
        Kind::Timestamp => timestamp(value).map(Converted::Integer),
        Kind::Enum(values) => {
            let text = text(value);
            if values.contains(&text) {
                Ok(Converted::Text(text))
            } else {
                Err(format!("`{text}` is not one of {}", values.join(", ")))
            }
        }
        Kind::Amount { currency: fixed, allow_negative, .. } => {
            let code = match (fixed, row_currency) {
                (Some(code), _) => code.clone(),
                (None, Some(value)) if !matches!(value, Value::Null) => {
                    currency(&text(value)).map_err(|reason| format!("has no valid currency: {reason}"))?
                }
                (None, _) => return Err("has no currency: its currency column is empty".into()),
            };
            let minor = minor_units(&text(value), &code)?;
            if minor < 0 && !allow_negative {
                return Err(format!("`{}` is a negative amount", text(value)));
            }
            Ok(Converted::Integer(minor))
        }
    }
}

/// Any value as text: numbers as written, booleans as `true`/`false`, JSON as its text.
fn text(value: Value<'_>) -> String {
    match value {
        Value::Null => String::new(),
        Value::Boolean(b) => b.to_string(),
        Value::Integer(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Text(s) | Value::Json(s) => s.trim().to_string(),
    }
}

fn integer(value: Value<'_>) -> Result<i64, String> {
    match value {
        Value::Integer(i) => Ok(i),
        Value::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(f as i64),
        other => text(other).parse().map_err(|_| format!("`{}` is not a whole number", text(other))),
    }
}

fn boolean(value: Value<'_>) -> Result<bool, String> {
    match value {
        Value::Boolean(b) => Ok(b),
        Value::Integer(0) => Ok(false),
        Value::Integer(1) => Ok(true),
        other => match text(other).to_ascii_lowercase().as_str() {
            "true" | "yes" | "y" | "t" | "1" => Ok(true),
            "false" | "no" | "n" | "f" | "0" => Ok(false),
            written => Err(format!("`{written}` is not a boolean (true/false, yes/no, 1/0)")),
        },
    }
}

/// The currencies Stripe accepts, as ISO 4217 codes in lower case.
const CURRENCIES: &str = "aed afn all amd ang aoa ars aud awg azn bam bbd bdt bgn bhd bif bmd bnd bob brl bsd bwp byn bzd \
cad cdf chf clp cny cop crc cve czk djf dkk dop dzd egp etb eur fjd fkp gbp gel gip gmd gnf gtq gyd hkd hnl htg huf \
idr ils inr isk jmd jod jpy kes kgs khr kmf krw kwd kyd kzt lak lbp lkr lrd lsl mad mdl mga mkd mmk mnt mop mur mvr \
mwk mxn myr mzn nad ngn nio nok npr nzd omr pab pen pgk php pkr pln pyg qar ron rsd rub rwf sar sbd scr sek sgd shp \
sle sos srd std szl thb tjs tnd top try ttd twd tzs uah ugx usd uyu uzs vnd vuv wst xaf xcd xof xpf yer zar zmw";
/// Currencies without a minor unit: amounts are whole units.
const ZERO_DECIMAL: &[&str] = &[
    "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof",
    "xpf",
];
/// Currencies with three decimal places.
const THREE_DECIMAL: &[&str] = &["bhd", "jod", "kwd", "omr", "tnd"];

/// A currency code, checked and lower-cased.
pub fn currency(code: &str) -> Result<String, String> {
    let lower = code.trim().to_ascii_lowercase();
    if lower.len() == 3 && CURRENCIES.split_ascii_whitespace().any(|c| c == lower) {
        Ok(lower)
    } else {
        Err(format!("`{code}` is not a currency code Stripe accepts (ISO 4217, such as usd or eur)"))
    }
}

/// A decimal amount in major units (`19.99`) as minor units of `currency` (`1999`), exactly: no float is
/// involved, and an amount finer than the currency's smallest unit is refused rather than rounded.
fn minor_units(written: &str, currency: &str) -> Result<i64, String> {
    let decimals = if ZERO_DECIMAL.contains(&currency) {
        0
    } else if THREE_DECIMAL.contains(&currency) {
        3
    } else {
        2
    };
    let not_amount = || format!("`{written}` is not an amount (write it like 19.99)");
    let (negative, digits) = match written.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, written.strip_prefix('+').unwrap_or(written)),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() && fraction.is_empty() || !all_digits(whole) || !all_digits(fraction) {
        return Err(not_amount());
    }
    let fraction = fraction.trim_end_matches('0');
    if fraction.len() > decimals {
        return Err(format!(
            "`{written}` has more decimal places than {} allows ({decimals})",
            currency.to_ascii_uppercase()
        ));
    }
    let scale = 10i64.pow(decimals as u32);
    let whole: i64 = if whole.is_empty() { 0 } else { whole.parse().map_err(|_| not_amount())? };
    let fraction: i64 = format!("{fraction:0<decimals$}").parse().unwrap_or(0);
    let minor = whole.checked_mul(scale).and_then(|w| w.checked_add(fraction)).ok_or_else(not_amount)?;
    Ok(if negative { -minor } else { minor })
}

/// Unix seconds from Unix seconds, `YYYY-MM-DD` (midnight UTC) or RFC 3339 (`2026-11-24T08:00:00Z`, with an
/// offset or fractional seconds).
fn timestamp(value: Value<'_>) -> Result<i64, String> {
    if let Value::Integer(seconds) = value {
        return Ok(seconds);
    }
    let written = text(value);
    if let Ok(seconds) = written.parse::<i64>() {
        return Ok(seconds);
    }
    parse_datetime(&written).ok_or_else(|| {
        format!(
            "`{written}` is not a timestamp (RFC 3339 such as 2026-11-24T08:00:00Z, a date, or Unix seconds)"
        )
    })
}

fn parse_datetime(text: &str) -> Option<i64> {
    let number = |s: &str| -> Option<i64> {
        if s.bytes().all(|b| b.is_ascii_digit()) { s.parse().ok() } else { None }
    };
    let date = text.get(..10)?;
    let (year, month, day) = (number(date.get(..4)?)?, number(date.get(5..7)?)?, number(date.get(8..10)?)?);
    if &date[4..5] != "-"
        || &date[7..8] != "-"
        || !(1..=12).contains(&month)
        || !(1..=days_in(year, month)).contains(&day)
    {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let rest = &text[10..];
    if rest.is_empty() {
        return Some(days * 86_400);
    }
    let rest = rest.strip_prefix(['T', 't', ' '])?;
    let (hour, minute, second) =
        (number(rest.get(..2)?)?, number(rest.get(3..5)?)?, number(rest.get(6..8)?)?);
    if &rest[2..3] != ":" || &rest[5..6] != ":" || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut zone = &rest[8..];
    if let Some(fraction) = zone.strip_prefix('.') {
        zone = fraction.trim_start_matches(|c: char| c.is_ascii_digit());
    }
    let offset = match zone {
        "Z" | "z" => 0,
        _ => {
            let sign = match zone.get(..1)? {
                "+" => 1,
                "-" => -1,
                _ => return None,
            };
            let (h, m) = (number(zone.get(1..3)?)?, number(zone.get(4..6)?)?);
            if zone.len() != 6 || &zone[3..4] != ":" {
                return None;
            }
            sign * (h * 3600 + m * 60)
        }
    };
    Some(days * 86_400 + hour * 3600 + minute * 60 + second - offset)
}

fn days_in(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_become_minor_units_exactly() {
        assert_eq!(minor_units("19.99", "usd"), Ok(1999));
        assert_eq!(minor_units("0.1", "usd"), Ok(10));
        assert_eq!(minor_units("5", "eur"), Ok(500));
        assert_eq!(minor_units("1500", "jpy"), Ok(1500));
        assert_eq!(minor_units("1.234", "kwd"), Ok(1234));
        assert_eq!(minor_units("-2.50", "usd"), Ok(-250));
        assert!(
            minor_units("19.999", "usd").unwrap_err().contains("more decimal places than USD allows (2)")
        );
        assert!(minor_units("10.5", "jpy").is_err());
        assert!(minor_units("1,000", "usd").is_err());
        assert!(minor_units(".", "usd").is_err());
    }

    #[test]
    fn timestamps_become_unix_seconds() {
        assert_eq!(parse_datetime("1970-01-01"), Some(0));
        assert_eq!(parse_datetime("2026-11-24T08:00:00Z"), Some(1_795_478_400 + 8 * 3600));
        assert_eq!(parse_datetime("2026-11-24T09:00:00.250+01:00"), Some(1_795_478_400 + 8 * 3600));
        assert_eq!(parse_datetime("2024-02-30"), None);
        assert_eq!(parse_datetime("2026-11-24T25:00:00Z"), None);
    }
}
