//! The library's modules stand on floors (the comments above its `pub mod` lines in `host/src/lib.rs`): a
//! module imports only from the floors below its own, and no two modules, at any depth, import each
//! other. This reads the sources as they are and names every import that breaks either rule, with the file
//! it is in, so a move that runs a floor backwards fails here rather than in a later reading of the code.
//!
//! What counts as an import: a `use` of `crate::`, `super::` or `self::`, and any path written out in the
//! code from those roots. A name a module imports and its children then take through `super::` is followed
//! to where it was imported from. Test modules (`#[cfg(test)] mod …`) are left out: the rules are for the
//! library itself.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module, by its path from the crate root (`["sync", "runner"]`).
type ModPath = Vec<String>;

fn source_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Each top-level module's floor, from the `// N. …` comment above its `pub mod` line in lib.rs.
fn floors() -> BTreeMap<String, usize> {
    let lib = std::fs::read_to_string(source_dir().join("lib.rs")).expect("lib.rs reads");
    let mut floor = None;
    let mut floors = BTreeMap::new();
    for line in lib.lines() {
        if let Some(number) = line.strip_prefix("// ").and_then(|rest| rest.split_once(". ")) {
            floor = number.0.parse::<usize>().ok().or(floor);
        }
        if let Some(name) = line.strip_prefix("pub mod ").and_then(|rest| rest.strip_suffix(';')) {
            let floor =
                floor.unwrap_or_else(|| panic!("`pub mod {name}` in lib.rs stands under no `// N. …` floor"));
            floors.insert(name.to_string(), floor);
        }
    }
    floors
}

/// Every module of the library that has a file, with its code: comments and test modules cut out.
fn modules() -> BTreeMap<ModPath, (String, String)> {
    fn walk(dir: &Path, into: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("the sources list") {
            let path = entry.expect("an entry").path();
            if path.is_dir() {
                walk(&path, into);
            } else if path.extension().is_some_and(|e| e == "rs") {
                into.push(path);
            }
        }
    }
    let root = source_dir();
    let mut files = Vec::new();
    walk(&root, &mut files);
    let mut modules = BTreeMap::new();
    for file in files {
        let relative = file.strip_prefix(&root).expect("under src").to_string_lossy().replace('\\', "/");
        // The binary's own files (its entry point and subcommands) are not the library's.
        if relative == "lib.rs" || relative == "main.rs" || relative.starts_with("commands/") {
            continue;
        }
        let mut path: ModPath = relative.trim_end_matches(".rs").split('/').map(String::from).collect();
        if path.last().is_some_and(|last| last == "mod") {
            path.pop();
        }
        let text = std::fs::read_to_string(&file).expect("a source reads");
        modules.insert(path, (relative, without_tests(&code_of(&text))));
    }
    modules
}

/// The code of a source: its comments cut out, and the insides of its strings and characters blanked (so
/// that neither a `use` nor a brace in a string is taken for code).
fn code_of(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        let after_ident = i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_');
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if c == 'r' && !after_ident && matches!(next, Some('"' | '#')) {
            // A raw string: up to the quote followed by as many hashes as it opened with.
            let hashes = chars[i + 1..].iter().take_while(|&&h| h == '#').count();
            if chars.get(i + 1 + hashes) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            let start = i;
            i += hashes + 2;
            while i < chars.len()
                && !(chars[i] == '"' && chars[i + 1..].iter().take(hashes).all(|&h| h == '#'))
            {
                i += 1;
            }
            i = (i + 1 + hashes).min(chars.len());
            out.extend(blanked(&chars[start..i]));
        } else if c == '"' {
            let start = i;
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i = (i + 1).min(chars.len());
            out.extend(blanked(&chars[start..i]));
        } else if c == '\'' {
            // A character (`'"'`, `'\''`, `'\u{1F600}'`) is kept whole; a lifetime is only its quote.
            let end = match next {
                Some('\\') => chars[i + 2..].iter().position(|&q| q == '\'').map(|at| i + 2 + at),
                Some(_) if chars.get(i + 2) == Some(&'\'') => Some(i + 2),
                _ => None,
            };
            let end = end.unwrap_or(i);
            out.extend(blanked(&chars[i..=end]));
            i = end + 1;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// A literal with everything but its quotes (and the lines it spans) blanked.
fn blanked(literal: &[char]) -> impl Iterator<Item = char> + '_ {
    let last = literal.len() - 1;
    literal.iter().enumerate().map(move |(at, &c)| match c {
        '\n' => '\n',
        _ if at == 0 || at == last => c,
        _ => ' ',
    })
}

/// The code with every `#[cfg(test)]` module cut out.
fn without_tests(code: &str) -> String {
    let mut code = code.to_string();
    while let Some(at) = code.find("#[cfg(test)]") {
        let rest = &code[at..];
        let item = rest.trim_start_matches("#[cfg(test)]").trim_start();
        let is_module = item.starts_with("mod ") || item.starts_with("pub(crate) mod ");
        let Some(open) = rest.find(['{', ';']).filter(|_| is_module) else {
            // A test-only item that is not a module (a helper): only the attribute goes.
            code.replace_range(at..at + "#[cfg(test)]".len(), "");
            continue;
        };
        let end = match rest.as_bytes()[open] {
            b'{' => at + open + closing_brace(&rest[open..]).expect("a test module ends"),
            _ => at + open,
        };
        code.replace_range(at..=end, "");
    }
    code
}

/// Where the brace that `code` opens with closes.
fn closing_brace(code: &str) -> Option<usize> {
    let mut depth = 0;
    for (at, c) in code.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 1 => return Some(at),
            '}' => depth -= 1,
            _ => {}
        }
    }
    None
}

/// The paths a `use` tree brings in, each with the name it binds (`None` for a glob).
fn use_tree(tree: &str, prefix: &[String], out: &mut Vec<(ModPath, Option<String>)>) {
    let tree = tree.trim();
    if let Some(open) = tree.find('{') {
        let mut path = prefix.to_vec();
        path.extend(segments(&tree[..open]));
        let Some(close) = tree.rfind('}').filter(|close| *close > open) else { return };
        let inner = &tree[open + 1..close];
        let mut depth = 0;
        let mut start = 0;
        for (at, c) in inner.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    use_tree(&inner[start..at], &path, out);
                    start = at + 1;
                }
                _ => {}
            }
        }
        use_tree(&inner[start..], &path, out);
        return;
    }
    if tree.is_empty() {
        return;
    }
    let (path_text, alias) = match tree.split_once(" as ") {
        Some((path, alias)) => (path, Some(alias.trim().to_string())),
        None => (tree, None),
    };
    let mut path = prefix.to_vec();
    path.extend(segments(path_text));
    if path.last().is_some_and(|last| last == "self") {
        path.pop();
    }
    let bound = match path.last() {
        Some(last) if last == "*" => None,
        Some(last) => Some(alias.unwrap_or_else(|| last.clone())),
        None => None,
    };
    out.push((path, bound));
}

fn segments(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split("::").map(str::trim).filter(|s| !s.is_empty()).map(String::from)
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Every `use` of a module: its whole tree, as written.
fn uses(code: &str) -> Vec<String> {
    let mut trees = Vec::new();
    let mut from = 0;
    while let Some(found) = code[from..].find("use ") {
        let at = from + found;
        from = at + 4;
        if code[..at].chars().next_back().is_some_and(is_ident) {
            continue;
        }
        if let Some(end) = code[at..].find(';') {
            trees.push(code[at + 4..at + end].to_string());
        }
    }
    trees
}

/// The crate-relative path a path written in `module` names: `crate::…`, `super::…` or `self::…`; `None`
/// for a path from elsewhere (`std::…`, a dependency's).
fn absolute(module: &[String], path: &[String]) -> Option<ModPath> {
    let mut absolute: ModPath = match path.first().map(String::as_str) {
        Some("crate") => Vec::new(),
        Some("super") | Some("self") => module.to_vec(),
        _ => return None,
    };
    for (index, segment) in path.iter().enumerate() {
        match segment.as_str() {
            "crate" if index == 0 => {}
            "self" => {}
            "super" => {
                absolute.pop();
            }
            _ => absolute.push(segment.clone()),
        }
    }
    Some(absolute)
}

/// Reads the library's imports: for each module, the modules it names.
struct Imports {
    modules: BTreeMap<ModPath, (String, String)>,
    /// Per module, each name its `use`s bind to a path of the crate.
    bound: BTreeMap<ModPath, BTreeMap<String, ModPath>>,
}

impl Imports {
    fn read() -> Imports {
        let modules = modules();
        let mut bound = BTreeMap::new();
        for (module, (_, code)) in &modules {
            let mut names = BTreeMap::new();
            for tree in uses(code) {
                let mut paths = Vec::new();
                use_tree(&tree, &[], &mut paths);
                for (path, name) in paths {
                    // A `use` of a child's item, without a root (`use runner::Runner;`), is the child's.
                    let child = path.first().map(|first| [module.clone(), vec![first.clone()]].concat());
                    let target = match absolute(module, &path) {
                        Some(target) => Some(target),
                        None if child.as_ref().is_some_and(|c| modules.contains_key(c)) => {
                            Some([module.clone(), path.clone()].concat())
                        }
                        None => None,
                    };
                    if let (Some(target), Some(name)) = (target, name) {
                        names.insert(name, target);
                    }
                }
            }
            bound.insert(module.clone(), names);
        }
        Imports { modules, bound }
    }

    /// The module a crate path leads to: the deepest module on it, following a name a module imported
    /// to where it came from.
    fn resolve(&self, path: &[String], hops: usize) -> ModPath {
        let mut module: ModPath = Vec::new();
        for (index, segment) in path.iter().enumerate() {
            let deeper = [module.clone(), vec![segment.clone()]].concat();
            if self.modules.contains_key(&deeper) {
                module = deeper;
                continue;
            }
            // A name the module imported leads on to where it came from (at most a few hops: an import of
            // an import), unless it names itself.
            let imported = self.bound.get(&module).and_then(|names| names.get(segment));
            if let Some(target) = imported.filter(|target| hops < 8 && target.as_slice() != &path[..=index]) {
                let mut onward = target.clone();
                onward.extend(path[index + 1..].iter().cloned());
                return self.resolve(&onward, hops + 1);
            }
            break;
        }
        module
    }

    /// The modules `module` names, each with the path it wrote.
    fn named_by(&self, module: &ModPath) -> BTreeSet<(ModPath, String)> {
        let code = &self.modules[module].1;
        let mut named = BTreeSet::new();
        let mut written: Vec<ModPath> = Vec::new();
        for tree in uses(code) {
            let mut paths = Vec::new();
            use_tree(&tree, &[], &mut paths);
            written.extend(paths.into_iter().map(|(path, _)| path));
        }
        for root in ["crate::", "super::", "self::"] {
            let mut from = 0;
            while let Some(found) = code[from..].find(root) {
                let at = from + found;
                from = at + root.len();
                if code[..at].chars().next_back().is_some_and(|c| is_ident(c) || c == ':') {
                    continue;
                }
                let end = code[at..]
                    .find(|c: char| !(is_ident(c) || c == ':'))
                    .map_or(code.len(), |offset| at + offset);
                written.push(segments(&code[at..end]).collect());
            }
        }
        for path in written {
            if let Some(absolute) = absolute(module, &path) {
                named.insert((self.resolve(&absolute, 0), path.join("::")));
            }
        }
        named
    }
}

#[test]
fn every_module_imports_only_from_the_floors_below_its_own() {
    let floors = floors();
    let imports = Imports::read();
    for module in imports.modules.keys() {
        assert!(floors.contains_key(&module[0]), "`{}` has no floor in lib.rs", module[0]);
    }
    let mut wrong = Vec::new();
    for module in imports.modules.keys() {
        let (file, _) = &imports.modules[module];
        let own = floors[&module[0]];
        for (named, written) in imports.named_by(module) {
            let Some(top) = named.first().filter(|top| **top != module[0]) else { continue };
            let floor = floors[top];
            if floor >= own {
                wrong.push(format!("{file} (floor {own}) imports `{written}` from `{top}` (floor {floor})"));
            }
        }
    }
    assert!(wrong.is_empty(), "imports that do not come from a lower floor:\n{}", wrong.join("\n"));
    // The rule is not empty: the floors above the ground import from below.
    let sync = imports.named_by(&vec!["sync".to_string()]);
    assert!(sync.iter().any(|(named, _)| named.first().is_some_and(|top| top == "state")), "{sync:?}");
}

#[test]
fn no_two_modules_import_each_other() {
    let imports = Imports::read();
    // Which sibling names which (two children of one module), with the files and paths that do.
    let mut arrows: BTreeMap<(ModPath, ModPath), Vec<String>> = BTreeMap::new();
    for module in imports.modules.keys() {
        for (named, written) in imports.named_by(module) {
            let shared = module.iter().zip(&named).take_while(|(a, b)| a == b).count();
            // A module names its own children, and a child its ancestors: those are not between siblings.
            if shared == module.len() || shared == named.len() {
                continue;
            }
            let pair = (module[..=shared].to_vec(), named[..=shared].to_vec());
            arrows.entry(pair).or_default().push(format!("{} names `{written}`", imports.modules[module].0));
        }
    }
    let circles: Vec<String> = arrows
        .iter()
        .filter(|((from, to), _)| from < to && arrows.contains_key(&(to.clone(), from.clone())))
        .map(|((from, to), why)| {
            let back = &arrows[&(to.clone(), from.clone())];
            format!(
                "{} and {} import each other:\n  {}\n  {}",
                from.join("::"),
                to.join("::"),
                why.join("\n  "),
                back.join("\n  ")
            )
        })
        .collect();
    assert!(circles.is_empty(), "{}", circles.join("\n"));
    // The reading sees imports between siblings at every depth.
    let plugin_format = vec!["plugin".to_string(), "format".to_string()];
    assert!(
        arrows.contains_key(&(plugin_format, vec!["plugin".to_string(), "bindings".to_string()])),
        "plugin::format's use of plugin::bindings was not read"
    );
}

/// The reading itself, on code written for it.
#[test]
fn the_reading_finds_imports_through_groups_aliases_and_parents() {
    let code = code_of(
        "use crate::{a::{B, c as d}, e}; // use crate::commented\nlet s = \"use x; {\"; let c = '\"'; crate::f::g();",
    );
    assert!(!code.contains("commented") && !code.contains("use x"), "{code}");
    assert!(code.contains("crate::f::g"), "{code}");
    let mut paths = Vec::new();
    use_tree(uses(&code)[0].as_str(), &[], &mut paths);
    let bound: Vec<_> = paths.iter().filter_map(|(_, name)| name.clone()).collect();
    assert_eq!(bound, ["B", "d", "e"]);
    let tests_cut = without_tests(
        "fn a() {}\n#[cfg(test)]\nmod tests {\n    use crate::daemon;\n    fn b() { {} }\n}\nfn c() {}",
    );
    assert!(!tests_cut.contains("daemon") && tests_cut.contains("fn c"), "{tests_cut}");
    let module = vec!["sync".to_string(), "runner".to_string()];
    assert_eq!(
        absolute(&module, &segments("super::worker::Worker").collect::<Vec<_>>()).unwrap(),
        ["sync", "worker", "Worker"]
    );
}
