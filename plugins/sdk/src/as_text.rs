//! Values every plugin writes as text the same way: dates and times as `sluice-as-text` writes them (the
//! host writes typed timestamps with the same crate), and decimals with every digit.

use crate::{FatalError, Options};
pub use sluice_as_text::*;

/// The exact digits of `unscaled × 10^-scale`.
pub fn decimal(unscaled: i128, scale: i8) -> String {
    if scale <= 0 {
        let zeros = "0".repeat(scale.unsigned_abs() as usize);
        return if unscaled == 0 { "0".into() } else { format!("{unscaled}{zeros}") };
    }
    let scale = scale as usize;
    let digits = unscaled.unsigned_abs().to_string();
    let digits = format!("{digits:0>width$}", width = scale + 1);
    let (whole, fraction) = digits.split_at(digits.len() - scale);
    let sign = if unscaled < 0 { "-" } else { "" };
    format!("{sign}{whole}.{fraction}")
}

/// How decimals are handed on: the `decimals` option of every format that has them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decimals {
    /// As exact text (`"12.30"`), the default.
    Text,
    /// As the nearest float.
    Float,
}

impl Decimals {
    /// The `decimals` option: `text` (the default) or `float`.
    pub fn from_options(options: &mut Options) -> Result<Decimals, FatalError> {
        match options.get("decimals").as_deref() {
            None | Some("text") => Ok(Decimals::Text),
            Some("float") => Ok(Decimals::Float),
            Some(other) => Err(crate::fatal(
                0,
                format!("option `decimals` is `{other}`; expected \"text\" or \"float\""),
            )),
        }
    }

    /// A decimal's exact digits (`text`, as [`decimal`] writes them) handed on as this says.
    pub fn json(self, text: String) -> serde_json::Value {
        match self {
            Decimals::Text => serde_json::Value::String(text),
            Decimals::Float => crate::json::float(text.parse().unwrap_or(f64::NAN)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_keep_every_digit() {
        assert_eq!(decimal(1230, 2), "12.30");
        assert_eq!(decimal(-5, 3), "-0.005");
        assert_eq!(decimal(0, 2), "0.00");
        assert_eq!(decimal(7, -2), "700");
        assert_eq!(decimal(i128::MAX, 38), "1.70141183460469231731687303715884105727");
    }

    #[test]
    fn the_decimals_option_is_text_or_float() {
        let decimals = |value: &str| Decimals::from_options(&mut Options::from_pairs(&[("decimals", value)]));
        assert_eq!(Decimals::from_options(&mut Options::from_pairs(&[])).unwrap(), Decimals::Text);
        assert_eq!(decimals("float").unwrap(), Decimals::Float);
        assert!(decimals("money").unwrap_err().message.contains("`money`; expected"));
        assert_eq!(Decimals::Text.json("12.30".into()), serde_json::json!("12.30"));
        assert_eq!(Decimals::Float.json("12.30".into()), serde_json::json!(12.3));
    }
}
