//! The `sluice` command.

mod commands;

use clap::{Parser, Subcommand};
use commands::Failure;
use sluice::env::redact_stripe_keys;
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

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
    /// How log lines are written to stderr: `text` for a person, `json` for a log collector.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Runs as a daemon: every dataflow on its schedule, an HTTP API and dashboard (default
    /// http://127.0.0.1:7878/), reloads on SIGHUP or a change of the configuration or a plugin, and stops
    /// on SIGTERM or SIGINT once the objects in flight commit (or roll back after the shutdown timeout).
    Daemon,
    /// Checks before a deploy: the configuration, every plugin it names, and each dataflow's source (one
    /// page of its objects listed) and database. Exits 0 when all is well, 1 naming what is not.
    Check,
    /// Runs dataflows now: imports the objects that are new or changed since the last run. Exits 0 when
    /// every object loaded, 1 when any failed (see the summary), 2 on a usage or configuration error.
    Run {
        /// The dataflow to run [default: every dataflow of the configuration].
        dataflow: Option<String>,
        /// Instead of importing new objects, try the dataflow's rejected rows again: those its template
        /// refused go through the template as it is now, those the sink (Stripe) refused go to it again.
        /// A row that goes through leaves the rejects, keeping its object and line; `sluice rollback`
        /// undoes the replay.
        #[arg(long, requires = "dataflow")]
        replay_rejects: bool,
    },
    /// Lists the dataflows: name, type (source ─► sink), status, tables, created, updated, last refresh.
    Dataflows {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// List each dataflow's tables with their purpose, kind, rows and columns instead.
        #[arg(long, conflicts_with = "workers")]
        tables: bool,
        /// List the workers sharing runs through the PostgreSQL state store instead: id, host, last
        /// heartbeat and what each loads.
        #[arg(long)]
        workers: bool,
    },
    /// Shows a dataflow's runs, newest first: start, duration, status, objects, rows written and rejected,
    /// and the error of a run that failed. With --run, that run's objects, each with its outcome.
    History {
        dataflow: String,
        /// Show the objects of this run instead: status, rows, rejected rows and error of each.
        #[arg(long)]
        run: Option<i64>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Shows the rows a dataflow rejected, oldest run first: the run, table, object and line of each, why it
    /// was refused, and its raw text (cut to fit; --json has all of it).
    Rejects {
        dataflow: String,
        /// Only the rows rejected by this run.
        #[arg(long)]
        run: Option<i64>,
        /// Only the rows whose reason holds this text (ignoring case).
        #[arg(long)]
        reason: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Takes a dataflow's table back to where it was before its newest run (rows and columns); the run's
    /// objects are imported again by the next run. Run it again to go back another run.
    Rollback {
        dataflow: String,
        /// Do not import the rolled-back objects again (until they change).
        #[arg(long)]
        skip: bool,
    },
    /// Compacts a dataflow's Delta tables (small Parquet files merged) and deletes the files that no
    /// version within `versions` runs refers to, so that a rollback within them still works.
    Optimize { dataflow: String },
    /// Deletes a dataflow's table, rejected rows, ledger, cursor and run history; its configuration stays,
    /// so the next run starts from scratch. Asks first on a terminal.
    Remove {
        dataflow: String,
        /// Do not ask (required when not on a terminal).
        #[arg(long)]
        yes: bool,
    },
    /// Imports a dataflow's failed objects again (all, or one by --object) and runs it: for an object that
    /// failed for a reason now fixed outside Sluice's sight (a plugin's host, a database limit raised).
    /// Loaded objects are not touched. Exits as `run` does.
    Retry {
        dataflow: String,
        /// Only this object's key.
        #[arg(long)]
        object: Option<String>,
    },
    /// Shows what the next run of a dataflow would import, and its first records, writing nothing.
    Preview {
        dataflow: String,
        /// How many records to show (with --diff: to compare) [default: 10; with --diff, 1000].
        #[arg(long)]
        records: Option<usize>,
        /// For a Stripe sink: what the run would create, update (field by field, old ─► new) and leave
        /// unchanged, read from Stripe at the sink's rate limit. Nothing is written.
        #[arg(long)]
        diff: bool,
        /// With --diff, print JSON instead of a table.
        #[arg(long, requires = "diff")]
        json: bool,
    },
    /// Tools for plugin authors: what a `.wasm` file is, and what it makes of a sample.
    Plugin {
        #[command(subcommand)]
        tool: PluginTool,
    },
    /// Runs a file through a format plugin: records as JSON lines on stdout, rejected rows and a summary
    /// on stderr. Exits 0 when the file was read to its end, 1 when it cannot be read as that format, 2 on
    /// a usage or configuration error.
    Parse {
        /// A bundled format (csv, tsv, json, jsonl, parquet, xml, avro, xlsx), a plugin named in the configuration, or a .wasm path.
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

#[derive(Subcommand)]
enum PluginTool {
    /// Makes a plugin crate NAME (in the folder NAME) that builds for wasm32-wasip2 and passes its own
    /// `cargo test` as it is: a start to change into the plugin you need.
    New {
        name: String,
        /// A format plugin (bytes in, records out) or a data template (records in, target records out).
        #[arg(long, value_enum)]
        kind: commands::plugin::Kind,
        /// The `plugins/sdk` folder of a Sluice checkout [default: the one this binary was built from].
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
    /// Prints the world and contract version a component implements, its exports and imports (naming those
    /// the sandbox refuses), its size and its compile time. Exits 1 where Sluice would not load it.
    Inspect {
        /// The `.wasm` component.
        file: PathBuf,
    },
    /// Runs a sample through a plugin: a format plugin reads it; a template maps the records a bundled
    /// format reads from it. Records go to stdout as JSON lines, rejected rows and a summary to stderr.
    Test {
        /// The `.wasm` component.
        file: PathBuf,
        /// The sample file.
        sample: PathBuf,
        /// An option for the plugin, KEY=VALUE; repeatable.
        #[arg(long = "option", short = 'o', value_name = "KEY=VALUE", value_parser = parse_option)]
        options: Vec<(String, String)>,
        /// For a template: the bundled format the sample is read with [default: by its extension].
        #[arg(long)]
        input_format: Option<String>,
    },
}

fn parse_option(text: &str) -> Result<(String, String), String> {
    let (key, value) = text.split_once('=').ok_or_else(|| format!("`{text}` is not KEY=VALUE"))?;
    Ok((key.trim().to_string(), value.to_string()))
}

/// Logs to stderr: `SLUICE_LOG` filters (default: `info` for the daemon, whose log is its record, `warn`
/// for commands, whose output is).
fn init_logging(format: LogFormat, daemon: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SLUICE_LOG")
        .unwrap_or_else(|_| if daemon { "info".into() } else { "warn".into() });
    let logs = tracing_subscriber::fmt().with_writer(io::stderr).with_env_filter(filter);
    match format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().flatten_event(true).with_current_span(false).init(),
    }
}

fn main() -> ExitCode {
    sluice::allocator::limit_arenas();
    let cli = Cli::parse();
    init_logging(cli.log_format, matches!(cli.command, Command::Daemon));
    let config = cli.config.as_deref();
    let result = match &cli.command {
        Command::Daemon => commands::daemon::daemon(config),
        Command::Check => commands::check::check(config),
        Command::Run { dataflow: Some(dataflow), replay_rejects: true } => {
            commands::run::replay_rejects(config, dataflow)
        }
        Command::Run { dataflow, .. } => commands::run::run(config, dataflow.as_deref()),
        Command::Retry { dataflow, object } => commands::run::retry(config, dataflow, object.as_deref()),
        Command::Dataflows { json, tables, workers } => {
            commands::dataflows::list(config, *json, *tables, *workers)
        }
        Command::Rejects { dataflow, run, reason, json } => {
            commands::dataflows::rejects(config, dataflow, *run, reason.as_deref(), *json)
        }
        Command::History { dataflow, run: None, json } => {
            commands::dataflows::history(config, dataflow, *json)
        }
        Command::History { dataflow, run: Some(run), json } => {
            commands::dataflows::run_objects(config, dataflow, *run, *json)
        }
        Command::Rollback { dataflow, skip } => commands::rollback::rollback(config, dataflow, *skip),
        Command::Optimize { dataflow } => commands::rollback::optimize(config, dataflow),
        Command::Remove { dataflow, yes } => commands::remove::remove(config, dataflow, *yes),
        Command::Preview { dataflow, records, diff: false, .. } => {
            commands::preview::preview(config, dataflow, records.unwrap_or(10))
        }
        Command::Preview { dataflow, records, diff: true, json } => {
            commands::preview::diff(config, dataflow, records.unwrap_or(1000), *json)
        }
        Command::Plugin { tool: PluginTool::New { name, kind, sdk } } => {
            commands::plugin::new(name, *kind, sdk.as_deref())
        }
        Command::Plugin { tool: PluginTool::Inspect { file } } => commands::plugin::inspect(config, file),
        Command::Plugin { tool: PluginTool::Test { file, sample, options, input_format } } => {
            commands::plugin::test(config, file, sample, input_format.as_deref(), options)
        }
        Command::Parse { format, dataflow, options, file } => {
            commands::parse::parse_command(config, format.as_deref(), dataflow.as_deref(), options, file)
        }
    };
    // `eprintln!` would panic where stderr is closed too (`sluice run 2>&1 | head -1`); the status still tells.
    // A Stripe key quoted by any message (a server's, a configuration line's) is masked, as a last guard.
    let say = |message: &str| {
        let _ = writeln!(io::stderr(), "error: {}", redact_stripe_keys(message));
    };
    match result {
        Ok(()) | Err(Failure::Closed) => ExitCode::SUCCESS,
        Err(Failure::Input(message)) => {
            say(&message);
            ExitCode::from(1)
        }
        Err(Failure::Usage(message)) => {
            say(&message);
            ExitCode::from(2)
        }
        Err(Failure::Busy(message)) => {
            say(&message);
            ExitCode::from(75)
        }
    }
}
