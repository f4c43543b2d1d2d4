//! `${VAR}` interpolation, so secrets stay out of `connector.toml`, and [`Secret`], which keeps them out of
//! logs and messages.
//!
//! `${VAR}` is replaced by the variable's value, `${VAR:-fallback}` by the fallback where the variable is
//! unset or empty, and `$$` by a single `$`. An unset variable without a fallback is an error, so a
//! forgotten export fails at start-up rather than as an empty password against S3.

use serde::{Deserialize, Deserializer};
use std::fmt;

/// Expands `${VAR}`, `${VAR:-fallback}` and `$$` in `text`.
pub fn expand(text: &str) -> Result<String, String> {
    expand_with(text, |name| std::env::var(name).ok())
}

fn expand_with(text: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut expanded = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(dollar) = rest.find('$') {
        expanded.push_str(&rest[..dollar]);
        let after = &rest[dollar + 1..];
        if let Some(after_escape) = after.strip_prefix('$') {
            expanded.push('$');
            rest = after_escape;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body.find('}').ok_or_else(|| format!("`${{` without a closing `}}` in `{text}`"))?;
            let (name, fallback) = match body[..end].split_once(":-") {
                Some((name, fallback)) => (name, Some(fallback)),
                None => (&body[..end], None),
            };
            let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(format!("`${{{name}}}` is not an environment variable name"));
            }
            match (lookup(name).filter(|value| !value.is_empty()), fallback) {
                (Some(value), _) => expanded.push_str(&value),
                (None, Some(fallback)) => expanded.push_str(fallback),
                (None, None) => {
                    return Err(format!(
                        "environment variable `{name}` is not set (write `${{{name}:-default}}` for a fallback)"
                    ));
                }
            }
            rest = &body[end + 1..];
        } else {
            expanded.push('$');
            rest = after;
        }
    }
    expanded.push_str(rest);
    Ok(expanded)
}

/// Deserializes a string with `${VAR}` expanded; an error carries the value's place in the file.
pub fn string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    expand(&String::deserialize(deserializer)?).map_err(serde::de::Error::custom)
}

/// [`string`] for an optional key; a value that expands to nothing (`"${S3_ENDPOINT:-}"`) is as if the key
/// were not there, so one file serves deployments that set the variable and those that do not.
pub fn optional<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    string(deserializer).map(|value| Some(value).filter(|v| !v.is_empty()))
}

/// A credential: expanded like any string, but never shown by `Debug` or `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// A secret holding `value`, which is never shown.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value itself, for the one call that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// `text` with this secret, and anything shaped like a Stripe key, masked: for a message that quotes
    /// what a server answered, which may echo a credential back.
    pub fn redact(&self, text: &str) -> String {
        let text = match self.0.len() {
            // Too short to be a credential worth masking, and masking it would garble the text.
            0..4 => text.to_string(),
            _ => text.replace(&self.0, "[redacted]"),
        };
        redact_stripe_keys(&text)
    }
}

/// The prefixes of Stripe's secret and restricted keys.
const STRIPE_KEY_PREFIXES: [&str; 4] = ["sk_live_", "sk_test_", "rk_live_", "rk_test_"];

/// `text` with every Stripe secret or restricted key (`sk_live_…`, `rk_test_…`) masked after its prefix, as
/// a last guard for messages that are printed, logged or stored.
pub fn redact_stripe_keys(text: &str) -> String {
    let mut redacted = String::with_capacity(text.len());
    let mut rest = text;
    while let Some((at, prefix)) =
        STRIPE_KEY_PREFIXES.iter().filter_map(|prefix| rest.find(prefix).map(|at| (at, *prefix))).min()
    {
        let after = &rest[at + prefix.len()..];
        let key_length = after.find(|c: char| !c.is_ascii_alphanumeric()).unwrap_or(after.len());
        redacted.push_str(&rest[..at + prefix.len()]);
        // Stripe masks a key the same way: its prefix stays, so the mode (live, test) can still be told.
        redacted.push_str(if key_length > 0 { "[redacted]" } else { "" });
        rest = &after[key_length..];
    }
    redacted.push_str(rest);
    redacted
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        string(deserializer).map(Secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_and_every_stripe_key_are_masked_in_a_message() {
        let key = Secret::new("wrong_key");
        assert_eq!(
            key.redact("Authorization was 'Bearer wrong_key'; also sk_live_51AbC and rk_test_x9, not sk_"),
            "Authorization was 'Bearer [redacted]'; also sk_live_[redacted] and rk_test_[redacted], not sk_"
        );
        assert_eq!(redact_stripe_keys("key sk_test_4242abcd."), "key sk_test_[redacted].");
        assert_eq!(Secret::new("abc").redact("abc"), "abc", "too short to be a credential");
    }

    fn expand_test(text: &str) -> Result<String, String> {
        expand_with(text, |name| match name {
            "KEY" => Some("s3cr3t".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        })
    }

    #[test]
    fn expands_variables_fallbacks_and_escapes() {
        assert_eq!(expand_test("a ${KEY} b").unwrap(), "a s3cr3t b");
        assert_eq!(expand_test("${MISSING:-x}${EMPTY:-y}").unwrap(), "xy");
        assert_eq!(expand_test("$$5 and $HOME").unwrap(), "$5 and $HOME");
        assert!(expand_test("${MISSING}").unwrap_err().contains("`MISSING` is not set"));
        assert!(expand_test("${KEY").unwrap_err().contains("closing"));
        assert!(expand_test("${1X}").unwrap_err().contains("not an environment variable name"));
    }

    #[test]
    fn a_secret_is_never_printed() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret:?}"), "Secret(***)");
        assert_eq!(secret.expose(), "hunter2");
    }
}
