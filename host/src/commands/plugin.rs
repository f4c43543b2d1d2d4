//! `sluice plugin inspect` and `sluice plugin test`: a plugin author's look at a `.wasm` file, without a
//! dataflow.

use super::parse::print_records;
use super::{Failure, load_config, plugin_host};
use indicatif::HumanBytes;
use sluice::plugin::{Limits, PluginSource, PluginSpec, World};
use std::path::Path;

/// Prints what the component is; fails (exit 1) where Sluice would not load it, saying why.
pub fn inspect(config_path: Option<&Path>, file: &Path) -> Result<(), Failure> {
    let config = load_config(config_path)?;
    let wasm =
        std::fs::read(file).map_err(|e| Failure::Usage(format!("cannot read {}: {e}", file.display())))?;
    let host = plugin_host(&config)?;
    let inspection =
        host.inspect(&wasm).map_err(|reason| Failure::Input(format!("{}: {reason}", file.display())))?;
    println!("file:      {} ({})", file.display(), HumanBytes(inspection.size as u64));
    match inspection.world {
        Some(world) => println!(
            "world:     {} (sluice:plugin@{})",
            world.as_str(),
            inspection.contract_version.as_deref().unwrap_or("unversioned")
        ),
        None => println!("world:     none of Sluice's"),
    }
    println!(
        "compiles:  in {:.0} ms (then cached, keyed by its SHA-256)",
        inspection.compile_time.as_secs_f64() * 1000.0
    );
    println!("exports:   {}", inspection.exports.join(", "));
    println!("imports:   {}", inspection.imports.len());
    for import in &inspection.imports {
        match &import.refused {
            Some(_) => println!("  {}  REFUSED", import.name),
            None => println!("  {}", import.name),
        }
    }
    match inspection.refusal() {
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
    let config = load_config(config_path)?;
    let wasm =
        std::fs::read(file).map_err(|e| Failure::Usage(format!("cannot read {}: {e}", file.display())))?;
    let host = plugin_host(&config)?;
    let inspection =
        host.inspect(&wasm).map_err(|reason| Failure::Usage(format!("{}: {reason}", file.display())))?;
    if let Some(reason) = inspection.refusal() {
        return Err(Failure::Usage(format!("{}: Sluice will not load it: {reason}", file.display())));
    }
    let name = file.file_stem().map_or("plugin".into(), |s| s.to_string_lossy().into_owned());
    let spec = PluginSpec { name, source: PluginSource::File(file.to_path_buf()), limits: Limits::default() };
    let input = std::fs::File::open(sample)
        .map_err(|e| Failure::Usage(format!("cannot open {}: {e}", sample.display())))?;
    let object = sample.display().to_string();
    if inspection.world == Some(World::Format) {
        let plugin = host.load_format(&spec).map_err(|e| Failure::Usage(e.to_string()))?;
        return print_records(&plugin, None, &object, options, input);
    }
    let template = host.load_template(&spec).map_err(|e| Failure::Usage(e.to_string()))?;
    let format = match input_format {
        Some(format) => format.to_string(),
        None => sample.extension().and_then(|e| e.to_str()).unwrap_or_default().to_ascii_lowercase(),
    };
    let reader = config.plugin_spec(&format).map_err(|_| {
        Failure::Usage(format!(
            "cannot tell how to read {} for the template: name its format with --input-format (csv, tsv, json, jsonl)",
            sample.display()
        ))
    })?;
    let reader = host.load_format(&reader).map_err(|e| Failure::Usage(e.to_string()))?;
    let mut run = template.open(&object, options).map_err(|e| Failure::Usage(e.to_string()))?;
    print_records(&reader, Some(&mut run), &object, &[], input)
}
