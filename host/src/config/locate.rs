//! Where a key sits in `connector.toml`, so that every error names the line and the key.

use std::ops::Range;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// A key of the file: its dotted path, the byte offset where it is written, and its value's bytes.
struct Key {
    path: String,
    offset: usize,
    value: Range<usize>,
}

/// The keys of a TOML text by position.
pub struct Locator<'t> {
    text: &'t str,
    /// Every key, ordered by where it is written.
    keys: Vec<Key>,
}

impl<'t> Locator<'t> {
    /// Indexes `text`; text that does not parse yields no keys (toml's own error then says where).
    pub fn new(text: &'t str) -> Locator<'t> {
        let mut keys = Vec::new();
        if let Ok(root) = DeTable::parse(text) {
            collect(root.get_ref(), "", &mut keys);
        }
        keys.sort_by_key(|key| key.offset);
        Locator { text, keys }
    }

    /// The 1-based line of a byte offset.
    pub fn line(&self, offset: usize) -> usize {
        self.text.as_bytes()[..offset.min(self.text.len())].iter().filter(|&&b| b == b'\n').count() + 1
    }

    /// The line of the key at `path` (`dataflows.Orders.source.bucket`), if the file writes it.
    pub fn line_of(&self, path: &str) -> Option<usize> {
        self.keys.iter().find(|key| key.path == path).map(|key| self.line(key.offset))
    }

    /// The key an error at `span` is about. toml points most errors at the key or value itself; errors
    /// inside a table read as a whole (a source, chosen by its `type`) span that table, and then the key
    /// the message quotes (`` `tabel` ``, or a `${VAR}` it reads) is the one.
    pub fn key_at(&self, span: &Range<usize>, message: &str) -> Option<&str> {
        let quoted: Vec<&str> = message.split('`').skip(1).step_by(2).collect();
        let at_header = self.text[span.start..].starts_with('[');
        // The keys the error can be about: those in its span and, for a table, the table's own keys.
        let table = self.keys.iter().rfind(|key| span.contains(&key.offset)).filter(|_| at_header);
        let candidates = self.keys.iter().filter(|key| {
            span.contains(&key.offset) || table.is_some_and(|t| key.path.starts_with(&format!("{}.", t.path)))
        });
        let named = candidates.clone().find(|key| {
            let name = key.path.rsplit('.').next().unwrap_or(&key.path);
            let value = self.text.get(key.value.clone()).unwrap_or_default();
            quoted.iter().any(|q| *q == name || value.contains(&format!("${{{q}")))
        });
        if let Some(key) = named.or(table) {
            return Some(&key.path);
        }
        let index = self.keys.partition_point(|key| key.offset <= span.start);
        index.checked_sub(1).map(|i| self.keys[i].path.as_str())
    }
}

fn collect(table: &DeTable<'_>, prefix: &str, keys: &mut Vec<Key>) {
    for (key, value) in table.iter() {
        let path =
            if prefix.is_empty() { key.get_ref().to_string() } else { format!("{prefix}.{}", key.get_ref()) };
        keys.push(Key { path: path.clone(), offset: key.span().start, value: value.span() });
        collect_value(value, &path, keys);
    }
}

fn collect_value(value: &Spanned<DeValue<'_>>, path: &str, keys: &mut Vec<Key>) {
    match value.get_ref() {
        DeValue::Table(table) => collect(table, path, keys),
        DeValue::Array(array) => {
            for (index, item) in array.into_iter().enumerate() {
                collect_value(item, &format!("{path}[{index}]"), keys);
            }
        }
        _ => {}
    }
}
