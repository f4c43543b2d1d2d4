//! The dataflow's `[format.options]`, as the host hands them over: keys with string values.

use crate::{FatalError, fatal};

/// Options by key. Every getter marks its key as used; [`Options::finish`] refuses any key left unused, so
/// a misspelt option is an error rather than silently ignored.
pub struct Options {
    entries: Vec<(String, String, bool)>,
}

impl Options {
    pub(crate) fn new(entries: Vec<(String, String)>) -> Self {
        Options { entries: entries.into_iter().map(|(k, v)| (k, v, false)).collect() }
    }

    /// Builds options from key and value pairs, as the host would hand them over (for a parser's own tests).
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Self {
        Self::new(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    /// The raw text of an option. Where a key is given twice (a plugin's default, then the dataflow's own
    /// value), the later one wins.
    pub fn get(&mut self, key: &str) -> Option<String> {
        let mut value = None;
        for (k, v, used) in &mut self.entries {
            if k == key {
                *used = true;
                value = Some(v.clone());
            }
        }
        value
    }

    /// A boolean option (`true` or `false`).
    pub fn bool(&mut self, key: &str, default: bool) -> Result<bool, FatalError> {
        match self.get(key).as_deref() {
            None => Ok(default),
            Some("true") => Ok(true),
            Some("false") => Ok(false),
            Some(other) => Err(invalid(key, other, "true or false")),
        }
    }

    /// A non-negative whole number.
    pub fn uint(&mut self, key: &str, default: u64) -> Result<u64, FatalError> {
        match self.get(key) {
            None => Ok(default),
            Some(text) => text.trim().parse().map_err(|_| invalid(key, &text, "a whole number")),
        }
    }

    /// A single ASCII character (`"\t"` may be written as the two characters `\t`). `Ok(None)` when the
    /// option is absent or set to the empty string.
    pub fn ascii_char(&mut self, key: &str) -> Result<Option<u8>, FatalError> {
        let Some(text) = self.get(key) else { return Ok(None) };
        match text.as_str() {
            "" => Ok(None),
            "\\t" => Ok(Some(b'\t')),
            single if single.len() == 1 && single.is_ascii() => Ok(Some(single.as_bytes()[0])),
            other => Err(invalid(key, other, "one ASCII character")),
        }
    }

    /// A list of strings, written as a JSON array (`["NA", ""]`, as the host passes a TOML array) or as
    /// comma-separated text (`NA,N/A`, handy on a command line).
    pub fn list(&mut self, key: &str) -> Result<Option<Vec<String>>, FatalError> {
        let Some(text) = self.get(key) else { return Ok(None) };
        if text.trim_start().starts_with('[') {
            serde_json::from_str(&text).map(Some).map_err(|_| invalid(key, &text, "an array of strings"))
        } else {
            Ok(Some(text.split(',').map(str::to_string).collect()))
        }
    }

    /// Refuses any option no getter asked for.
    pub fn finish(self) -> Result<(), FatalError> {
        let unknown: Vec<&str> =
            self.entries.iter().filter(|(_, _, used)| !used).map(|(k, _, _)| k.as_str()).collect();
        if unknown.is_empty() {
            Ok(())
        } else {
            Err(fatal(0, format!("unknown option(s): {}", unknown.join(", "))))
        }
    }
}

fn invalid(key: &str, value: &str, expected: &str) -> FatalError {
    fatal(0, format!("option `{key}` is `{value}`; expected {expected}"))
}
