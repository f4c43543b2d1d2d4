//! The format a member of a ZIP archive is read with: for a dataflow of a bundled format, the bundled
//! format the member's extension names, where that is another (`customers.jsonl` in an archive a `csv`
//! dataflow reads); else the dataflow's own. A dataflow with a plugin of its own reads every member with
//! it, whatever the members are called.

use super::SyncError;
use crate::object::ObjectMeta;
use crate::plugin::{BUNDLED_FORMATS, FormatPlugin, PluginError};
use crate::source::archive::Member;
use std::collections::HashMap;
use std::sync::Mutex;

/// What loads a format plugin by its name for a dataflow (the runner, with the plugins it was given).
pub(super) trait FormatLoader: Sync {
    /// The format plugin `plugin`, for the dataflow `dataflow`.
    fn load_format(&self, dataflow: &str, plugin: &str) -> Result<FormatPlugin, SyncError>;
}

/// The formats a run's members are read with, each loaded once.
pub(super) struct MemberFormats<'r> {
    loader: &'r dyn FormatLoader,
    dataflow: &'r str,
    /// Formats loaded for members so far, by name.
    loaded: Mutex<HashMap<&'static str, FormatPlugin>>,
}

impl<'r> MemberFormats<'r> {
    pub fn new(loader: &'r dyn FormatLoader, dataflow: &'r str) -> Self {
        MemberFormats { loader, dataflow, loaded: Mutex::default() }
    }

    /// The format `object` is read with where it is not `plugin` (the dataflow's), with no options of the
    /// dataflow's (they are `plugin`'s); `None` where it is `plugin`.
    pub fn other_than(
        &self,
        plugin: &FormatPlugin,
        object: &ObjectMeta,
    ) -> Option<Result<FormatPlugin, PluginError>> {
        let named = member_format_other_than(plugin.name(), &Member::of(object)?.name)?;
        let mut loaded = self.loaded.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(format) = loaded.get(named) {
            return Some(Ok(format.clone()));
        }
        let format = self.loader.load_format(self.dataflow, named).map_err(|error| PluginError::Load {
            plugin: named.to_string(),
            reason: format!("for member `{}`: {error}", object.key),
        });
        if let Ok(format) = &format {
            loaded.insert(named, format.clone());
        }
        Some(format)
    }
}

/// The bundled format a member of an archive is read with where it is not `plugin`, the dataflow's (see
/// the module's documentation); `None` where it is `plugin`.
pub fn member_format_other_than(plugin: &str, member: &str) -> Option<&'static str> {
    if !BUNDLED_FORMATS.contains(&plugin) {
        return None;
    }
    format_named_by(member).filter(|named| *named != plugin)
}

/// The bundled format `member`'s extension names, a compression's extension left aside (`11.json.gz` is
/// `json`).
fn format_named_by(member: &str) -> Option<&'static str> {
    let lower = member.to_ascii_lowercase();
    let plain =
        [".gz", ".gzip", ".zst", ".zstd"].iter().find_map(|c| lower.strip_suffix(c)).unwrap_or(&lower);
    let (_, extension) = plain.rsplit_once('.')?;
    BUNDLED_FORMATS.iter().copied().find(|format| *format == extension)
}

#[cfg(test)]
mod tests {
    use super::format_named_by;

    #[test]
    fn a_member_names_a_bundled_format_by_its_extension_its_compression_aside() {
        assert_eq!(format_named_by("orders/11.JSONL"), Some("jsonl"));
        assert_eq!(format_named_by("orders/11.tsv.gz"), Some("tsv"));
        assert_eq!(format_named_by("book.xlsx"), Some("xlsx"));
        assert_eq!(format_named_by("notes.txt"), None);
        assert_eq!(format_named_by("README"), None);
        assert_eq!(format_named_by("archive.gz"), None);
    }
}
