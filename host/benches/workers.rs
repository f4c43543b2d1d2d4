//! Workers sharing a run: the same objects loaded by 1, 2 and 4 workers on one PostgreSQL state store,
//! each worker taking one object at a time, with every GetObject answered after S3's latency (50 ms by
//! default). The run is planned by this process (one worker); the others are `sluice daemon` processes.
//! The baseline is one worker, in the same run of the bench.
//!
//! ```sh
//! cargo bench --bench workers                                   # 20 MB in 200 objects, 50 ms latency
//! cargo bench --bench workers -- --objects 400 --latency-ms 100
//! ```
//!
//! Needs the PostgreSQL of `SLUICE_TEST_POSTGRES` (default postgres://postgres@127.0.0.1:5432/test).

#[allow(dead_code)] // what the other sync benches use of it, and this one does not
mod support;

use sluice::config::Config;
use sluice::plugin::{HostSettings, PluginHost};
use sluice::state::RunStatus;
use sluice::sync::{Quiet, Runner};
use sluice_testkit::TestDatabase;
use sluice_testkit::s3::{ACCESS_KEY, SECRET_KEY};
use std::time::{Duration, Instant};
use support::{BUCKET, Daemon, Orders, free_port, number_flag};

fn main() {
    let orders = Orders::from_args_or(20, 200);
    let latency = Duration::from_millis(number_flag("--latency-ms", 50) as u64);
    orders.s3.set_get_delay(latency);
    println!("S3 latency: {latency:?} before each GetObject; each worker loads one object at a time");
    println!("{:<10} {:>9} {:>10} {:>8} {:>8}", "workers", "seconds", "objects/s", "MB/s", "speedup");
    let mut one = None;
    for workers in [1, 2, 4] {
        let seconds = timed_run(&orders, workers).as_secs_f64();
        let one = *one.get_or_insert(seconds);
        println!(
            "{workers:<10} {seconds:>9.2} {:>10.1} {:>8.2} {:>8.2}",
            orders.objects as f64 / seconds,
            orders.bytes as f64 / 1e6 / seconds,
            one / seconds
        );
    }
}

/// One run of `Orders` into a new database, by this process and `workers - 1` daemons: its time.
fn timed_run(orders: &Orders, workers: usize) -> Duration {
    let database = TestDatabase::create();
    let dir = tempfile::tempdir().expect("a folder for the planner");
    let config_path = dir.path().join("connector.toml");
    std::fs::write(&config_path, configuration(orders, &database, free_port())).expect("the configuration");
    let daemons: Vec<(Daemon, tempfile::TempDir)> = (1..workers)
        .map(|_| {
            let dir = tempfile::tempdir().expect("a folder for a worker");
            std::fs::write(dir.path().join("connector.toml"), configuration(orders, &database, free_port()))
                .expect("a worker's configuration");
            (Daemon::start(dir.path()), dir)
        })
        .collect();
    let started = Instant::now();
    while registered_workers(&database) < daemons.len() as i64 {
        assert!(started.elapsed() < Duration::from_secs(60), "the worker daemons did not start");
        std::thread::sleep(Duration::from_millis(50));
    }

    let config = Config::load(&config_path).expect("the configuration reads");
    let host = PluginHost::new(HostSettings::default()).expect("plugin host");
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    // The plugin is compiled outside the timing, as a daemon does at start.
    Runner::new(&config, &host, runtime.handle().clone()).preview("Orders", 1).expect("the preview runs");
    let started = Instant::now();
    let report =
        Runner::new(&config, &host, runtime.handle().clone()).run("Orders", &Quiet).expect("the run");
    let elapsed = started.elapsed();
    assert_eq!(report.status, RunStatus::Succeeded, "{:?}", report.error);
    assert_eq!(report.counts.rows, orders.rows);
    drop(daemons);
    elapsed
}

/// A worker's `connector.toml`: the daemon on `port`, one object at a time; `Orders` from the bench's
/// bucket into the database, its state there too.
fn configuration(orders: &Orders, database: &TestDatabase, port: u16) -> String {
    format!(
        "[daemon]\nlisten = \"127.0.0.1:{port}\"\nmax_concurrent_objects = 1\n\n[state]\nurl = \"{url}\"\n\n[sink]\nurl = \"{url}\"\n\n\
         [dataflows.Orders]\nschedule = \"manual\"\n\
         source = {{ type = \"s3\", bucket = \"{BUCKET}\", endpoint = \"{}\", access_key_id = \"{ACCESS_KEY}\", secret_access_key = \"{SECRET_KEY}\" }}\n\
         format = {{ plugin = \"csv\" }}\nsink = {{ parallelism = 1 }}\n",
        orders.s3.endpoint(),
        url = database.url()
    )
}

fn registered_workers(database: &TestDatabase) -> i64 {
    database
        .client()
        .query_one("SELECT count(*) FROM _sluice.workers", &[])
        .map(|row| row.get(0))
        .unwrap_or(0)
}
