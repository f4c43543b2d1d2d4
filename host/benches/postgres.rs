//! Loading PostgreSQL: Sluice against PostgreSQL's own COPY, on the same rows in the same run.
//!
//! - Sluice: CSV files in a local folder, through the WASM csv plugin, into the dataflow's table by COPY
//!   (with its identity and lineage columns), one transaction per file with its marker.
//! - `psql \copy`: the same files into a plain table of the same columns, one `\copy` per file in one
//!   session, the way an operator bulk-loads CSV.
//!
//! Then rollback: a second run appends one more file, and `rollback` undoes it (a range of the 10-million-
//! row table's identity), then undoes the first run (the table it created goes).
//!
//! ```sh
//! cargo bench --bench postgres                              # 10 million rows in 20 files
//! cargo bench --bench postgres -- --rows 1000000 --files 4  # quicker
//! cargo bench --bench postgres -- --parallelism 1           # one object at a time
//! ```
//!
//! Needs the PostgreSQL of `SLUICE_TEST_POSTGRES` (default postgres://postgres@127.0.0.1:5432/test) and psql.

#[path = "support/args.rs"]
mod args;

use args::{flag, number_flag};
use sluice::config::Config;
use sluice::plugin::{HostSettings, PluginHost};
use sluice::state::RunStatus;
use sluice::sync::{Quiet, Runner, rollback};
use sluice_testkit::TestDatabase;
use sluice_testkit::orders::{COLUMNS, csv_rows};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

fn main() {
    let rows: u64 = number_flag("--rows", 10_000_000);
    let files: u64 = number_flag("--files", 20);
    // Objects loaded at once; the sink's default (the machine's cores, at most 4) when not given.
    let parallelism =
        flag("--parallelism").map_or(String::new(), |n| format!("sink = {{ parallelism = {n} }}\n"));

    let dir = tempfile::tempdir().expect("a folder for the files");
    let data = dir.path().join("data");
    std::fs::create_dir(&data).expect("the data folder");
    let an_hour_ago = SystemTime::now() - Duration::from_secs(3600);
    let mut bytes = 0;
    for file in 0..files {
        let text = csv_rows(file * rows / files, rows / files);
        bytes += text.len();
        let path = data.join(format!("{file:04}.csv"));
        std::fs::write(&path, text).expect("a data file");
        std::fs::File::options()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_modified(an_hour_ago))
            .expect("mtime");
    }
    let rows = rows / files * files;
    println!("input: {files} files, {:.1} MB, {rows} rows", bytes as f64 / 1e6);

    let database = TestDatabase::create();
    let config_path = dir.path().join("connector.toml");
    std::fs::write(
        &config_path,
        format!(
            "[state]\nurl = \"{url}\"\n[sink]\nurl = \"{url}\"\n\n[dataflows.Orders]\nsource = {{ type = \"local\", path = \"data\" }}\nformat = {{ plugin = \"csv\" }}\n{parallelism}",
            url = database.url()
        ),
    )
    .expect("the bench configuration is written");
    let config = Config::load(&config_path).expect("the bench configuration reads");
    let host = PluginHost::new(HostSettings::default()).expect("plugin host");
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let runner = Runner::new(&config, &host, runtime.handle().clone());
    // Compile the plugin outside the timing, as a daemon does at start.
    runner.preview("Orders", 1).expect("the preview runs");

    let copy = psql_copy(database.url(), &data, files);
    checkpoint(&database);
    let started = Instant::now();
    let report = runner.run("Orders", &Quiet).expect("the run");
    let sluice = started.elapsed();
    assert_eq!(report.status, RunStatus::Succeeded, "{:?}", report.error);
    assert_eq!(report.counts.rows, rows);

    println!("{:<34} {:>9} {:>12} {:>7}", "", "seconds", "rows/s", "ratio");
    let line = |name: &str, time: Duration| {
        let seconds = time.as_secs_f64();
        println!(
            "{name:<34} {seconds:>9.2} {:>12.0} {:>7.2}",
            rows as f64 / seconds,
            copy.as_secs_f64() / seconds
        );
    };
    line("psql \\copy (baseline)", copy);
    line("sluice run (csv plugin, COPY)", sluice);

    // Rollback of a run that appended to the big table, then of the run that created it.
    let extra = data.join("extra.csv");
    std::fs::write(&extra, csv_rows(rows, 100_000)).expect("one more file");
    let appended = runner.run("Orders", &Quiet).expect("the second run");
    assert_eq!(appended.counts.rows, 100_000);
    let started = Instant::now();
    let undone = rollback(&config, "Orders", false).expect("the rollback");
    let append_rollback = started.elapsed();
    assert_eq!(undone.rows_removed, 100_000);
    let started = Instant::now();
    let undone = rollback(&config, "Orders", false).expect("the second rollback");
    let create_rollback = started.elapsed();
    assert_eq!(undone.rows_removed, rows);
    println!(
        "rollback of a 100,000-row append to the {rows}-row table: {:.2} s; of the run that loaded all {rows} rows: {:.2} s",
        append_rollback.as_secs_f64(),
        create_rollback.as_secs_f64()
    );
}

/// Loads the files into a plain table of the same columns with `psql \copy`, one session; its time.
fn psql_copy(url: &str, data: &Path, files: u64) -> Duration {
    let columns: Vec<String> = COLUMNS.iter().map(|c| format!("{c} text")).collect();
    let mut script = format!("CREATE TABLE copy_baseline ({});\n", columns.join(", "));
    for file in 0..files {
        script.push_str(&format!(
            "\\copy copy_baseline FROM '{}' WITH (FORMAT csv, HEADER true)\n",
            data.join(format!("{file:04}.csv")).display()
        ));
    }
    let script_path = data.parent().expect("the bench folder").join("copy.sql");
    std::fs::write(&script_path, script).expect("the psql script");
    let started = Instant::now();
    let status = Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-f"])
        .arg(&script_path)
        .arg(url)
        .status()
        .expect("psql runs");
    let elapsed = started.elapsed();
    assert!(status.success(), "psql \\copy failed");
    elapsed
}

/// Writes dirty pages out, so one load does not pay for the other's.
fn checkpoint(database: &TestDatabase) {
    database.client().batch_execute("CHECKPOINT").expect("a checkpoint");
}
