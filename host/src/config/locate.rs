//! Where a key sits in `connector.toml`, so that every error names the line and the key.

use std::ops::Range;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// A key of the file: its dotted path and the byte offset where it is written.
struct Key {
    path: String,
    offset: usize,
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

    /// The key written last at or before a span: the key an error at that span is about.
    pub fn key_at(&self, span: &Range<usize>) -> Option<&str> {
        let index = self.keys.partition_point(|key| key.offset <= span.start);
        index.checked_sub(1).map(|i| self.keys[i].path.as_str())
    }
}

fn collect(table: &DeTable<'_>, prefix: &str, keys: &mut Vec<Key>) {
    for (key, value) in table.iter() {
        let path =
            if prefix.is_empty() { key.get_ref().to_string() } else { format!("{prefix}.{}", key.get_ref()) };
        keys.push(Key { path: path.clone(), offset: key.span().start });
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
