//! `sluice parse`: one file through a format plugin, records as JSON lines on stdout.

use super::{Failure, load_config, plugin_host};
use sluice::parse::{ParseError, parse_ranged, parse_stream};
use sluice::plugin::{FormatPlugin, PluginError, TemplateRun};
use sluice::source::FileRanges;
use std::io::{self, BufWriter, Write};
use std::path::Path;

pub fn parse_command(
    config_path: Option<&Path>,
    format: Option<&str>,
    dataflow: Option<&str>,
    extra_options: &[(String, String)],
    file: &Path,
) -> Result<(), Failure> {
    let config = load_config(config_path)?;
    let (plugin_name, mut options) = match (format, dataflow) {
        (Some(format), _) => (format.to_string(), Vec::new()),
        (None, Some(dataflow)) => {
            let Some(format) = &config.dataflow(dataflow)?.format else {
                return Err(Failure::Usage(format!("dataflow `{dataflow}` reads Stripe's API, not files")));
            };
            (format.plugin.clone(), format.option_pairs())
        }
        (None, None) => unreachable!("clap requires --format or --dataflow"),
    };
    options.extend_from_slice(extra_options);
    let spec = config.plugin_spec(&plugin_name)?;
    let input = std::fs::File::open(file)
        .map_err(|e| Failure::Usage(format!("cannot open {}: {e}", file.display())))?;

    let host = plugin_host(&config)?;
    let plugin = host.load_format(&spec).map_err(|e| Failure::Usage(e.to_string()))?;
    print_records(&plugin, None, &file.display().to_string(), &options, input)
}

/// Reads `file` through `plugin` (and `template`, where given), as a stream or by ranges as the plugin
/// reads: records as JSON lines on stdout, rejected rows and a summary on stderr.
pub fn print_records(
    plugin: &FormatPlugin,
    template: Option<&mut TemplateRun>,
    object: &str,
    options: &[(String, String)],
    file: std::fs::File,
) -> Result<(), Failure> {
    let stdout = io::stdout();
    let mut records = BufWriter::with_capacity(1 << 16, stdout.lock());
    let mut rejects = io::stderr().lock();
    let through = match &template {
        Some(template) => format!("plugin `{}` and template `{}`", plugin.name(), template.plugin_name()),
        None => format!("plugin `{}`", plugin.name()),
    };
    let print = |parsed: sluice::plugin::Parsed| {
        for batch in &parsed.batches {
            for row in 0..batch.num_rows() {
                batch.write_json_row(row, &mut records)?;
            }
        }
        for reject in &parsed.rejects {
            writeln!(rejects, "rejected: {object} line {}: {}", reject.line, reject.reason)?;
        }
        Ok(())
    };
    let result = if plugin.reads_by_range() {
        let input =
            FileRanges::new(file).map_err(|e| Failure::Input(format!("cannot read {object}: {e}")))?;
        parse_ranged(plugin, template, object, options, Box::new(input), print)
    } else {
        parse_stream(plugin, template, object, options, sluice::parse::WholeChunks::new(file), print)
    };
    let flushed = records.flush();
    match result {
        Ok(summary) => {
            if let Err(error) = flushed
                && error.kind() != io::ErrorKind::BrokenPipe
            {
                return Err(Failure::Input(format!("writing records: {error}")));
            }
            let seconds = summary.elapsed.as_secs_f64();
            note!(
                "{object}: {} rows, {} rejected, {} bytes, {seconds:.3} s ({:.1} MB/s) via {through}",
                summary.rows,
                summary.rejected,
                summary.bytes,
                summary.bytes as f64 / 1e6 / seconds.max(1e-9),
            );
            Ok(())
        }
        // A reader that went away (`sluice parse ... | head`) is not an error of the file.
        Err(ParseError::Consume { source, .. }) if source.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        // Options the plugin refused are a configuration error, like an unknown plugin.
        Err(error @ ParseError::Open(PluginError::Format { .. })) => Err(Failure::Usage(error.to_string())),
        Err(error) => Err(Failure::Input(error.to_string())),
    }
}
