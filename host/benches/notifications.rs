//! Event-driven discovery through SQS (moto's server, from the virtual environment under `target/`):
//!
//! 1. From PutObject to rows: a `sluice daemon` reads the bucket's events, and the bench puts one object
//!    at a time and times until its rows are in the PostgreSQL table: p50, p99 and the worst, in seconds.
//! 2. A run that finds nothing new in a bucket of 100,000 objects: the scheduled run's listing and plan,
//!    against the one ReceiveMessage that finds the queue empty. Both in the same run of the bench.
//!
//! ```sh
//! cargo bench --bench notifications                                  # 200 objects; 100,000 listed
//! cargo bench --bench notifications -- --objects 500 --listed 20000
//! cargo bench --bench notifications -- --loaded     # the 100,000 loaded first (minutes): ledger and markers too
//! ```
//!
//! Needs the PostgreSQL of `SLUICE_TEST_POSTGRES` (default postgres://postgres@127.0.0.1:5432/test).

#[allow(dead_code)] // what the other sync benches use of it, and this one does not
mod support;

use sluice::config::{Config, SourceConfig};
use sluice::plugin::{HostSettings, PluginHost};
use sluice::source::Notifications;
use sluice::state::RunStatus;
use sluice::sync::{Quiet, Runner};
use sluice_testkit::TestDatabase;
use sluice_testkit::s3::{ACCESS_KEY, S3Server, SECRET_KEY};
use sluice_testkit::sqs::SqsServer;
use std::time::{Duration, Instant, SystemTime};
use support::{Daemon, free_port, number_flag};

const BUCKET: &str = "bench";
/// Rows in each object of the latency bench.
const ROWS: usize = 100;
/// How often the bench looks for an object's rows.
const POLL: Duration = Duration::from_millis(2);

fn main() {
    sluice::allocator::limit_arenas();
    let objects = number_flag("--objects", 200);
    let listed = number_flag("--listed", 100_000);
    let sqs = SqsServer::start();
    put_to_rows(&sqs, objects);
    nothing_new(&sqs, listed);
}

/// Part 1: each object's time from its PutObject to its rows in the table.
fn put_to_rows(sqs: &SqsServer, objects: usize) {
    let s3 = S3Server::start();
    s3.create_bucket(BUCKET);
    let queue = sqs.create_queue("put-to-rows");
    s3.notify_queue(BUCKET, sqs.client(), &queue);
    let database = TestDatabase::create();
    let dir = tempfile::tempdir().expect("a folder for the daemon");
    let source = source(&s3, sqs, &queue, "");
    std::fs::write(
        dir.path().join("connector.toml"),
        format!(
            "[daemon]\nlisten = \"127.0.0.1:{}\"\n\n[state]\nurl = \"{url}\"\n\n[sink]\nurl = \"{url}\"\n\n\
             [dataflows.Orders]\nschedule = \"manual\"\nformat = {{ plugin = \"csv\" }}\nsink = {{ table = \"orders\" }}\n{source}",
            free_port(),
            url = database.url()
        ),
    )
    .expect("the daemon's configuration");
    let _daemon = Daemon::start(dir.path());
    let mut client = database.client();
    let mut landed = |key: &str| {
        client
            .query_opt("SELECT 1 FROM orders._sluice_objects WHERE key = $1", &[&key])
            .ok()
            .flatten()
            .is_some()
    };
    // The first object creates the table and compiles the plugin: outside the timing, as at a daemon's
    // start.
    let mut latencies = Vec::with_capacity(objects);
    for object in 0..=objects {
        let key = format!("orders/{object:05}.csv");
        let mut csv = String::from("id,amount\n");
        for row in 0..ROWS {
            csv.push_str(&format!("{object}-{row},{row}.25\n"));
        }
        let put = Instant::now();
        s3.put(BUCKET, &key, csv.as_bytes(), SystemTime::now());
        while !landed(&key) {
            assert!(put.elapsed() < Duration::from_secs(120), "`{key}` did not land in the table");
            std::thread::sleep(POLL);
        }
        if object > 0 {
            latencies.push(put.elapsed().as_secs_f64());
        }
    }
    latencies.sort_by(f64::total_cmp);
    let at =
        |quantile: f64| latencies[((latencies.len() as f64 * quantile).ceil() as usize).saturating_sub(1)];
    println!("PutObject to rows in PostgreSQL through SQS, {objects} objects of {ROWS} rows, one at a time:");
    println!("  p50 {:.3} s   p99 {:.3} s   worst {:.3} s", at(0.5), at(0.99), at(1.0));
}

/// Part 2: what finding nothing new costs, by listing and by the queue.
fn nothing_new(sqs: &SqsServer, listed: usize) {
    let s3 = S3Server::start();
    s3.create_bucket(BUCKET);
    // By default older than the first run's lookback: listed and planned, and none taken. With `--loaded`,
    // new, and loaded by a first run outside the timing: the runs timed then also read the ledger and the
    // table's markers of every object, as in a bucket whose objects are all loaded.
    let loaded = std::env::args().any(|arg| arg == "--loaded");
    let modified = match loaded {
        true => SystemTime::now(),
        false => SystemTime::now() - Duration::from_secs(200 * 86_400),
    };
    for object in 0..listed {
        s3.put(BUCKET, &format!("orders/{object:06}.csv"), b"id,amount\n1,2\n", modified);
    }
    let queue = sqs.create_queue("nothing-new");
    let dir = tempfile::tempdir().expect("a folder for the runs");
    let config_path = dir.path().join("connector.toml");
    std::fs::write(
        &config_path,
        format!(
            "[dataflows.Orders]\nformat = {{ plugin = \"csv\" }}\n{}",
            source(&s3, sqs, &queue, ", wait_time = \"0s\"")
        ),
    )
    .expect("the configuration");
    let config = Config::load(&config_path).expect("the configuration reads");
    let host = PluginHost::new(HostSettings::default()).expect("plugin host");
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let runner = Runner::new(&config, &host, runtime.handle().clone());
    runner.preview("Orders", 1).expect("the preview runs");
    if loaded {
        let started = Instant::now();
        let report = runner.run("Orders", &Quiet).expect("the loading run");
        assert_eq!(report.counts.objects, listed as u64, "{:?}", report.error);
        println!(
            "(the {listed} objects loaded into SQLite first, in {:.0} s)",
            started.elapsed().as_secs_f64()
        );
    }

    let mut listing = Vec::new();
    let pages_before = s3.list_pages();
    for _ in 0..3 {
        let started = Instant::now();
        let report = runner.run("Orders", &Quiet).expect("the run");
        listing.push(started.elapsed().as_secs_f64());
        assert_eq!((report.status, report.counts.objects), (RunStatus::Succeeded, 0), "{:?}", report.error);
    }
    let pages = (s3.list_pages() - pages_before) / 3;

    let SourceConfig::S3(s3_config) = &config.dataflow("Orders").expect("the dataflow").source else {
        unreachable!("an S3 source")
    };
    let notifications = runtime.block_on(Notifications::connect(s3_config)).expect("the queue");
    let mut receiving = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        let received = runtime.block_on(notifications.receive()).expect("a receive");
        receiving.push(started.elapsed().as_secs_f64());
        assert!(received.deliveries.is_empty());
    }
    let median = |mut times: Vec<f64>| {
        times.sort_by(f64::total_cmp);
        times[times.len() / 2]
    };
    let (listing, receiving) = (median(listing), median(receiving));
    println!("A run that finds nothing new, {listed} objects in the bucket:");
    let what = if loaded { "listing, ledger, markers" } else { "listing and planning" };
    println!("  {what:<24} {listing:>9.3} s   {pages} ListObjectsV2 requests");
    println!("  {:<24} {receiving:>9.4} s   1 ReceiveMessage request", "one empty receive");
    println!("  {:<24} {:>9.0}x", "listing / receive", listing / receiving);
}

/// An S3 source of `s3`'s bucket (`orders/`) with its events from `queue`, and `more` queue settings.
fn source(s3: &S3Server, sqs: &SqsServer, queue: &str, more: &str) -> String {
    format!(
        "[dataflows.Orders.source]\ntype = \"s3\"\nbucket = \"{BUCKET}\"\nprefix = \"orders/\"\nendpoint = \"{}\"\n\
         access_key_id = \"{ACCESS_KEY}\"\nsecret_access_key = \"{SECRET_KEY}\"\n\
         notifications = {{ queue_url = \"{queue}\", endpoint = \"{}\"{more} }}\n",
        s3.endpoint(),
        sqs.endpoint()
    )
}
