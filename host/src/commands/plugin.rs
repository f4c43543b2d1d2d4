//! `sluice plugin new`, `inspect` and `test`: a plugin author's tools, without a dataflow.

use super::parse::print_records;
use super::{Failure, load_config, plugin_host};
use indicatif::HumanBytes;
use sluice::config::{Compression, Config};
use sluice::plugin::{CONTRACT_VERSION, CompileSource, Limits, PluginHost, PluginSource, PluginSpec, World};
use std::path::{Path, PathBuf};

/// The guest SDK of the checkout this binary was built from, which a new plugin depends on by path unless
/// `--sdk` names another.
const BUILT_WITH_SDK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../plugins/sdk");

/// What `plugin new` writes, by kind: the crate's manifest and source, with `{{name}}`, `{{crate}}`,
/// `{{kind}}` and `{{sdk}}` filled in.
const MANIFEST: &str = include_str!("scaffold/Cargo.toml.in");
const FORMAT_SOURCE: &str = include_str!("scaffold/format.rs.in");
const RANGED_FORMAT_SOURCE: &str = include_str!("scaffold/ranged_format.rs.in");
const TEMPLATE_SOURCE: &str = include_str!("scaffold/template.rs.in");
const GITIGNORE: &str = include_str!("scaffold/gitignore.in");

/// The kinds of plugin `plugin new` makes.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Kind {
    /// A format plugin: bytes in, records out.
    Format,
    /// A format plugin that reads its file by ranges (contract 1.3.0), for formats with an index at the end.
    RangedFormat,
    /// A data template: records in, target records out.
    Template,
}

/// Writes a plugin crate `name` in the folder `name` (which must not exist yet) that builds and passes
/// its own tests as it is.
pub fn new(name: &str, kind: Kind, sdk: Option<&Path>) -> Result<(), Failure> {
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if !valid {
        return Err(Failure::Usage(format!(
            "`{name}` is not a plugin name: start with a lower-case letter; use lower-case letters, digits, `_` and `-`"
        )));
    }
    let folder = PathBuf::from(name);
    if folder.exists() {
        return Err(Failure::Usage(format!(
            "{} exists already: choose another name or folder",
            folder.display()
        )));
    }
    let sdk = match sdk {
        Some(sdk) => sdk.to_path_buf(),
        None => PathBuf::from(BUILT_WITH_SDK),
    };
    let sdk = sdk.canonicalize().map_err(|_| {
        Failure::Usage(format!(
            "the plugin SDK is not at {}: name the `plugins/sdk` folder of a Sluice checkout with --sdk",
            sdk.display()
        ))
    })?;
    let (kind_name, source) = match kind {
        Kind::Format => ("format", FORMAT_SOURCE),
        Kind::RangedFormat => ("ranged-format", RANGED_FORMAT_SOURCE),
        Kind::Template => ("template", TEMPLATE_SOURCE),
    };
    let crate_name = name.replace('-', "_");
    let fill = |text: &str| {
        text.replace("{{name}}", name)
            .replace("{{crate}}", &crate_name)
            .replace("{{kind}}", kind_name)
            .replace("{{sdk}}", &sdk.display().to_string())
    };
    let write = |path: PathBuf, text: String| {
        std::fs::write(&path, text)
            .map_err(|e| Failure::Input(format!("cannot write {}: {e}", path.display())))
    };
    std::fs::create_dir_all(folder.join("src"))
        .map_err(|e| Failure::Input(format!("cannot make {}: {e}", folder.display())))?;
    write(folder.join("Cargo.toml"), fill(MANIFEST))?;
    write(folder.join("src/lib.rs"), fill(source))?;
    write(folder.join(".gitignore"), GITIGNORE.to_string())?;
    out!("made the {kind_name} plugin `{name}` in {}/", folder.display())?;
    out!("  cd {name} && cargo test                           # its own tests")?;
    out!(
        "  cargo build --release --target wasm32-wasip2      # target/wasm32-wasip2/release/{crate_name}.wasm"
    )?;
    out!("  sluice plugin test target/wasm32-wasip2/release/{crate_name}.wasm SAMPLE")?;
    Ok(())
}

/// The configuration, a plugin host with its cache, and the bytes of the component `file`.
fn open_component(config_path: Option<&Path>, file: &Path) -> Result<(Config, PluginHost, Vec<u8>), Failure> {
    let config = load_config(config_path)?;
    let wasm =
        std::fs::read(file).map_err(|e| Failure::Usage(format!("cannot read {}: {e}", file.display())))?;
    let host = plugin_host(&config)?;
    Ok((config, host, wasm))
}

/// Prints what the component is; fails (exit 1) where Sluice would not load it, saying why.
pub fn inspect(config_path: Option<&Path>, file: &Path) -> Result<(), Failure> {
    let (_, host, wasm) = open_component(config_path, file)?;
    let inspection =
        host.inspect(&wasm).map_err(|reason| Failure::Input(format!("{}: {reason}", file.display())))?;
    out!("file:      {} ({})", file.display(), HumanBytes(inspection.size as u64))?;
    match (inspection.world, inspection.contract_version) {
        (Some(world), Some(version)) => out!(
            "world:     {} (sluice:plugin@{version}; this Sluice implements {CONTRACT_VERSION})",
            world.as_str()
        )?,
        (Some(world), None) => out!("world:     {} (no contract version)", world.as_str())?,
        (None, _) => out!("world:     none of Sluice's")?,
    }
    let refusal = inspection.refusal();
    match &inspection.about {
        _ if refusal.is_some() => {}
        Some(Ok(about)) if about.summary.is_empty() => out!("plugin:    {} {}", about.name, about.version)?,
        Some(Ok(about)) => out!("plugin:    {} {}: {}", about.name, about.version, about.summary)?,
        Some(Err(failure)) => out!("plugin:    {failure}")?,
        None => out!("plugin:    says nothing of itself (it exports no `about`, new in contract 1.1.0)")?,
    }
    let millis = inspection.compile_time.as_secs_f64() * 1000.0;
    match inspection.compiled_from {
        CompileSource::Compiled => out!("compiles:  in {millis:.0} ms (then cached, keyed by its SHA-256)")?,
        CompileSource::Cache => out!("compiles:  cached already (loaded in {millis:.0} ms)")?,
    }
    out!("exports:   {}", inspection.exports.join(", "))?;
    out!("imports:   {}", inspection.imports.len())?;
    for import in &inspection.imports {
        match &import.refused {
            Some(_) => out!("  {}  REFUSED", import.name)?,
            None => out!("  {}", import.name)?,
        }
    }
    match refusal {
        Some(reason) => Err(Failure::Input(format!("{}: Sluice will not load it: {reason}", file.display()))),
        None => Ok(()),
    }
}

/// Runs `sample` through the plugin: a format plugin reads it; a template maps the records the bundled
/// format `input_format` (default: by the sample's extension) reads from it. Records go to stdout as JSON
/// lines, rejected rows and a summary to stderr.
pub fn test(
    config_path: Option<&Path>,
    file: &Path,
    sample: &Path,
    input_format: Option<&str>,
    options: &[(String, String)],
) -> Result<(), Failure> {
    let (config, host, wasm) = open_component(config_path, file)?;
    let inspection =
        host.inspect(&wasm).map_err(|reason| Failure::Usage(format!("{}: {reason}", file.display())))?;
    if let Some(reason) = inspection.refusal() {
        return Err(Failure::Usage(format!("{}: Sluice will not load it: {reason}", file.display())));
    }
    let name = file.file_stem().map_or("plugin".into(), |s| s.to_string_lossy().into_owned());
    let spec = PluginSpec { name, source: PluginSource::File(file.to_path_buf()), limits: Limits::default() };
    let object = sample.display().to_string();
    if matches!(
        inspection.world,
        Some(World::Format | World::TypedFormat | World::RangedFormat | World::TypedRangedFormat)
    ) {
        let plugin = host.load_format(&spec).map_err(|e| Failure::Usage(e.to_string()))?;
        return print_records(&plugin, None, sample, Compression::Auto, options, &|_| None);
    }
    let template = host.load_template(&spec).map_err(|e| Failure::Usage(e.to_string()))?;
    let format = match input_format {
        Some(format) => format.to_string(),
        None => sample.extension().and_then(|e| e.to_str()).unwrap_or_default().to_ascii_lowercase(),
    };
    let reader = config.plugin_spec(&format).map_err(|_| {
        Failure::Usage(format!(
            "cannot tell how to read {} for the template: name its format with --input-format (csv, tsv, json, jsonl, parquet, xml, avro, xlsx)",
            sample.display()
        ))
    })?;
    let reader = host.load_format(&reader).map_err(|e| Failure::Usage(e.to_string()))?;
    let mut run = template.open(&object, options).map_err(|e| Failure::Usage(e.to_string()))?;
    print_records(&reader, Some(&mut run), sample, Compression::Auto, &[], &|_| None)
}
