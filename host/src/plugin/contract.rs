//! Which version of the `sluice:plugin` contract a plugin was built against, and whether this host runs it;
//! and which of the contract's worlds it implements.
//!
//! The contract (`wit/sluice.wit`) follows semver: a minor version only adds an interface a plugin may
//! export, so a host runs plugins of its own major built against its minor or an earlier one. A plugin of
//! another major, or of a newer minor (which may rely on what this host does not know), is refused with
//! both versions named, before anything of it runs.

use std::fmt;

/// The contract this host implements: the `package` line of `wit/sluice.wit` (a unit test keeps the two
/// equal).
pub const CONTRACT_VERSION: ContractVersion = ContractVersion { major: 1, minor: 4, patch: 0 };

/// The package every Sluice plugin's exports belong to.
pub(super) const CONTRACT_PACKAGE: &str = "sluice:plugin/";

/// A version of the contract, as a component names it in its exports (`sluice:plugin/parser@1.0.0`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ContractVersion {
    /// Breaking changes.
    pub major: u64,
    /// Additions.
    pub minor: u64,
    /// Changes to the documentation only.
    pub patch: u64,
}

impl ContractVersion {
    /// Reads `major.minor.patch`; a pre-release or anything else is not a contract version.
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.split('.').map(|part| part.parse::<u64>().ok());
        let version = ContractVersion { major: parts.next()??, minor: parts.next()??, patch: parts.next()?? };
        parts.next().is_none().then_some(version)
    }

    /// Why this host does not run a plugin built against `self`; `None` where it does.
    pub fn refusal(self) -> Option<String> {
        let host = CONTRACT_VERSION;
        if self.major != host.major {
            Some(format!(
                "it was built against contract sluice:plugin@{self}, and this Sluice implements sluice:plugin@{host}: \
                 a new major version breaks the contract, so rebuild the plugin against {}.x (or run a Sluice that \
                 implements {}.x)",
                host.major, self.major
            ))
        } else if self.minor > host.minor {
            Some(format!(
                "it was built against contract sluice:plugin@{self}, newer than the sluice:plugin@{host} this Sluice \
                 implements: upgrade Sluice, or rebuild the plugin against {}.{} or earlier",
                host.major, host.minor
            ))
        } else {
            None
        }
    }
}

impl fmt::Display for ContractVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// The Sluice world a component implements and the contract version its export names, found among the
/// names of its exports; `None` where it exports none of `parser`, `typed-parser`, `ranged-parser`,
/// `typed-ranged-parser` and `transform`.
pub(super) fn sluice_export<'a>(
    exports: impl IntoIterator<Item = &'a str>,
) -> Option<(World, Result<ContractVersion, String>)> {
    exports.into_iter().find_map(|name| {
        let interface = name.strip_prefix(CONTRACT_PACKAGE)?;
        let (interface, version) = interface.split_once('@').unwrap_or((interface, ""));
        let world = match interface {
            "parser" => World::Format,
            "ranged-parser" => World::RangedFormat,
            "typed-ranged-parser" => World::TypedRangedFormat,
            "typed-parser" => World::TypedFormat,
            "transform" => World::Template,
            _ => return None,
        };
        let version = ContractVersion::parse(version).ok_or_else(|| {
            format!("it exports `{name}`, which names no contract version this Sluice can read (it implements {CONTRACT_VERSION})")
        });
        Some((world, version))
    })
}

/// Why this host does not run a component with these exports, judged by their contract version alone.
pub(super) fn version_refusal<'a>(exports: impl IntoIterator<Item = &'a str>) -> Option<String> {
    match sluice_export(exports)? {
        (_, Ok(version)) => version.refusal(),
        (_, Err(unreadable)) => Some(unreadable),
    }
}

/// Which world a component implements, by the interface it exports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum World {
    /// Exports `sluice:plugin/parser`: a format plugin, fed its file as a stream.
    Format,
    /// Exports `sluice:plugin/ranged-parser` (since 1.2.0): a format plugin that reads its file by ranges.
    RangedFormat,
    /// Exports `sluice:plugin/typed-ranged-parser` (since 1.3.0): a format plugin that reads its file by
    /// ranges and hands over typed columns.
    TypedRangedFormat,
    /// Exports `sluice:plugin/typed-parser` (since 1.4.0): a format plugin, fed its file as a stream, that
    /// hands over text as spans of the bytes it was fed.
    TypedFormat,
    /// Exports `sluice:plugin/transform`: a data template.
    Template,
}

impl World {
    /// The world's name in `wit/sluice.wit`.
    pub fn as_str(self) -> &'static str {
        match self {
            World::Format => "format",
            World::RangedFormat => "ranged-format",
            World::TypedRangedFormat => "typed-ranged-format",
            World::TypedFormat => "typed-format",
            World::Template => "template",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(text: &str) -> ContractVersion {
        ContractVersion::parse(text).unwrap()
    }

    #[test]
    fn the_version_is_the_one_the_wit_file_declares() {
        let wit = include_str!("../../../wit/sluice.wit");
        assert!(wit.contains(&format!("\npackage sluice:plugin@{CONTRACT_VERSION};\n")), "wit/sluice.wit");
    }

    #[test]
    fn earlier_minors_of_this_major_run_and_newer_minors_and_other_majors_do_not() {
        assert_eq!(CONTRACT_VERSION, version("1.4.0"));
        assert_eq!(version("1.0.0").refusal(), None);
        assert_eq!(version("1.1.0").refusal(), None);
        assert_eq!(version("1.2.0").refusal(), None);
        assert_eq!(version("1.3.0").refusal(), None);
        assert_eq!(version("1.4.7").refusal(), None);

        let newer = version("1.5.0").refusal().unwrap();
        assert!(newer.contains("sluice:plugin@1.5.0, newer than the sluice:plugin@1.4.0"), "{newer}");
        assert!(newer.contains("upgrade Sluice"), "{newer}");

        for other in ["2.0.0", "0.1.0"] {
            let refusal = version(other).refusal().unwrap();
            assert!(refusal.contains(&format!("built against contract sluice:plugin@{other}")), "{refusal}");
            assert!(refusal.contains("this Sluice implements sluice:plugin@1.4.0"), "{refusal}");
        }
    }

    #[test]
    fn an_export_is_read_for_its_world_and_version() {
        let exports = ["sluice:plugin/about@1.1.0", "sluice:plugin/transform@1.0.0"];
        let (world, found) = sluice_export(exports).unwrap();
        assert_eq!((world, found), (World::Template, Ok(version("1.0.0"))));
        assert_eq!(version_refusal(exports), None);
        assert!(sluice_export(["wasi:cli/run@0.2.0"]).is_none());
        let ranged = sluice_export(["sluice:plugin/ranged-parser@1.2.0"]).unwrap();
        assert_eq!(ranged, (World::RangedFormat, Ok(version("1.2.0"))));
        let typed = sluice_export(["sluice:plugin/typed-ranged-parser@1.3.0"]).unwrap();
        assert_eq!(typed, (World::TypedRangedFormat, Ok(version("1.3.0"))));
        let spans = sluice_export(["sluice:plugin/typed-parser@1.4.0"]).unwrap();
        assert_eq!(spans, (World::TypedFormat, Ok(version("1.4.0"))));

        let unversioned = version_refusal(["sluice:plugin/parser"]).unwrap();
        assert!(
            unversioned.contains("`sluice:plugin/parser`, which names no contract version"),
            "{unversioned}"
        );
        assert_eq!(ContractVersion::parse("1.0.0-rc.1"), None);
        assert_eq!(ContractVersion::parse("1.0"), None);
    }
}
