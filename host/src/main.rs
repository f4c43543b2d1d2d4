//! The `sluice` command.

use clap::{Parser, Subcommand};
use sluice::config::{Config, ConfigError};
use sluice::parse::{ParseError, parse_stream};
use sluice::plugin::{HostSettings, PluginError, PluginHost, default_cache_dir};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The configuration read when `--config` is not given, if it exists.
const DEFAULT_CONFIG: &str = "connector.toml";

#[derive(Parser)]
#[command(
    name = "sluice",
    version,
    about = "Moves data from sources to sinks through sandboxed WebAssembly plugins"
)]
struct Cli {
    /// The configuration file [default: ./connector.toml, where it exists].
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs a file through a format plugin: records as JSON lines on stdout, rejected rows and a summary
    /// on stderr. Exits 0 when the file was read to its end, 1 when it cannot be read as that format, 2 on
    /// a usage or configuration error.
    Parse {
        /// A bundled format (csv, tsv, json, jsonl), a plugin named in the configuration, or a .wasm path.
        #[arg(long, required_unless_present = "dataflow", conflicts_with = "dataflow")]
        format: Option<String>,
        /// Read the file as this dataflow of the configuration reads its files (its plugin and options).
        #[arg(long)]
        dataflow: Option<String>,
        /// A format option, KEY=VALUE; repeatable; overrides the dataflow's.
        #[arg(long = "option", short = 'o', value_name = "KEY=VALUE", value_parser = parse_option)]
        options: Vec<(String, String)>,
        /// The file to read.
        file: PathBuf,
    },
}

fn parse_option(text: &str) -> Result<(String, String), String> {
    let (key, value) = text.split_once('=').ok_or_else(|| format!("`{text}` is not KEY=VALUE"))?;
    Ok((key.trim().to_string(), value.to_string()))
}

/// How a command failed, and so with which exit status.
enum Failure {
    /// The input could not be read as asked (exit 1).
    Input(String),
    /// The command or the configuration is wrong (exit 2).
    Usage(String),
}

impl From<ConfigError> for Failure {
    fn from(error: ConfigError) -> Self {
        Failure::Usage(error.to_string())
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SLUICE_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Parse { format, dataflow, options, file } => {
            parse_command(cli.config.as_deref(), format.as_deref(), dataflow.as_deref(), options, file)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Input(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(1)
        }
        Err(Failure::Usage(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

/// The configuration named by `--config`, else `./connector.toml` where it exists, else an empty one.
fn load_config(path: Option<&Path>) -> Result<Config, ConfigError> {
    match path {
        Some(path) => Config::load(path),
        None if Path::new(DEFAULT_CONFIG).exists() => Config::load(Path::new(DEFAULT_CONFIG)),
        None => Ok(Config::default()),
    }
}

fn parse_command(
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
            let format = &config.dataflow(dataflow)?.format;
            (format.plugin.clone(), format.option_pairs())
        }
        (None, None) => unreachable!("clap requires --format or --dataflow"),
    };
    options.extend_from_slice(extra_options);
    let spec = config.plugin_spec(&plugin_name)?;
    let input = std::fs::File::open(file)
        .map_err(|e| Failure::Usage(format!("cannot open {}: {e}", file.display())))?;

    let cache_dir = config.plugin_cache.clone().or_else(default_cache_dir);
    let host = PluginHost::new(HostSettings { cache_dir }).map_err(|e| Failure::Usage(format!("{e:#}")))?;
    let plugin = host.load_format(&spec).map_err(|e| Failure::Usage(e.to_string()))?;

    let object = file.display().to_string();
    let stdout = io::stdout();
    let mut records = BufWriter::with_capacity(1 << 16, stdout.lock());
    let mut rejects = io::stderr().lock();
    let result = parse_stream(&plugin, &object, &options, input, |parsed| {
        for batch in &parsed.batches {
            for row in 0..batch.num_rows() {
                batch.write_json_row(row, &mut records)?;
            }
        }
        for reject in &parsed.rejects {
            writeln!(rejects, "rejected: {object} line {}: {}", reject.line, reject.reason)?;
        }
        Ok(())
    });
    let flushed = records.flush();
    match result {
        Ok(summary) => {
            if let Err(error) = flushed
                && error.kind() != io::ErrorKind::BrokenPipe
            {
                return Err(Failure::Input(format!("writing records: {error}")));
            }
            let seconds = summary.elapsed.as_secs_f64();
            eprintln!(
                "{object}: {} rows, {} rejected, {} bytes, {seconds:.3} s ({:.1} MB/s) via plugin `{}`",
                summary.rows,
                summary.rejected,
                summary.bytes,
                summary.bytes as f64 / 1e6 / seconds.max(1e-9),
                plugin.name()
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
