//! A bench's command line: flags with values (`--mb 100`), after what cargo passes (`--bench`). Shared by
//! every bench, including those that take nothing else of `support` (`#[path = "support/args.rs"]`).

/// The `count` values the command line gives `name` (`--compare-csv BEFORE AFTER`), where it names it.
pub fn flag_values(name: &str, count: usize) -> Option<Vec<String>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let at = args.iter().position(|arg| arg == name)?;
    let values = args.get(at + 1..at + 1 + count).unwrap_or_else(|| panic!("{name} takes {count} value(s)"));
    Some(values.to_vec())
}

/// The value the command line gives `name` (`--generate DIR`), where it names it.
pub fn flag(name: &str) -> Option<String> {
    flag_values(name, 1).map(|mut values| values.remove(0))
}

/// The number the command line gives `name` (`--mb 100`), or `default`.
pub fn number_flag<T: std::str::FromStr>(name: &str, default: T) -> T {
    flag(name).map_or(default, |value| value.parse().unwrap_or_else(|_| panic!("{name} takes a number")))
}
