//! Many workers on one PostgreSQL state store: `sluice daemon` processes sharing a run's objects through
//! the state store's work table (and an embedding program doing the same through the library), each object
//! loaded once whatever happens to a worker; and SQLite state, which one daemon uses at a time.
//!
//! The objects come from the in-process S3 server with a delay before every GetObject, so that each takes
//! long enough for the work to spread and for a worker to be killed while it holds one.

mod support;

use serde_json::Value;
use sluice::config::Config;
use sluice::sync::{Quiet, Runner, SharedObjects, Worker};
use sluice_testkit::TestDatabase;
use sluice_testkit::s3::{ACCESS_KEY, S3Server, SECRET_KEY};
use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, SystemTime};
use support::daemon::{Daemon, daemon_section, free_port};

const BUCKET: &str = "exports";
/// Rows in each object.
const ROWS: usize = 40;
/// How long a run of these tests may take.
const A_RUN: Duration = Duration::from_secs(90);

/// The S3 server with `objects` CSV files of [`ROWS`] rows, each GetObject answered after `delay`.
fn bucket(objects: usize, delay: Duration) -> S3Server {
    let s3 = S3Server::start();
    s3.create_bucket(BUCKET);
    for object in 0..objects {
        let mut csv = String::from("id,amount\n");
        for row in 0..ROWS {
            csv.push_str(&format!("{object}-{row},{row}.25\n"));
        }
        s3.put(BUCKET, &format!("orders/{object:03}.csv"), csv.as_bytes(), SystemTime::now());
    }
    s3.set_get_delay(delay);
    s3
}

/// `connector.toml` of one worker: `Orders` from `s3` into PostgreSQL, state in the same database, run
/// only when asked.
fn configuration(s3: &S3Server, database: &TestDatabase, lease_timeout: &str) -> String {
    format!(
        "[state]\nurl = \"{url}\"\nlease_timeout = \"{lease_timeout}\"\n\n[sink]\nurl = \"{url}\"\n\n\
         [dataflows.Orders]\nschedule = \"manual\"\n\
         source = {{ type = \"s3\", bucket = \"{BUCKET}\", prefix = \"orders/\", endpoint = \"{}\", region = \"us-east-1\", access_key_id = \"{ACCESS_KEY}\", secret_access_key = \"{SECRET_KEY}\" }}\n\
         format = {{ plugin = \"csv\" }}\nsink = {{ table = \"orders\" }}\n",
        s3.endpoint(),
        url = database.url()
    )
}

/// libfaketime, from Debian's package `faketime` (which .ci/run installs).
const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// Starts a worker daemon in a folder of its own, with `env` beside the daemon's own.
fn worker(config: &str, objects_at_once: usize, env: &[(&str, String)]) -> (Daemon, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let daemon_lines = format!("max_concurrent_objects = {objects_at_once}");
    std::fs::write(
        dir.path().join("connector.toml"),
        format!("{}{config}", daemon_section(port, &daemon_lines)),
    )
    .unwrap();
    let daemon = Daemon::start_with(dir.path(), port, &[], env);
    (daemon, dir)
}

/// Every row once and every object's marker once: (rows, distinct rows, markers).
fn loaded(database: &TestDatabase) -> (i64, i64, i64) {
    let mut client = database.client();
    let rows: i64 = client.query_one("SELECT count(*) FROM orders.orders", &[]).unwrap().get(0);
    let distinct: i64 = client.query_one("SELECT count(DISTINCT id) FROM orders.orders", &[]).unwrap().get(0);
    let markers: i64 = client.query_one("SELECT count(*) FROM orders._sluice_objects", &[]).unwrap().get(0);
    (rows, distinct, markers)
}

/// The worker that loaded each object, as the ledger has it: (key, worker).
fn loaded_by(database: &TestDatabase) -> Vec<(String, Option<String>)> {
    let mut client = database.client();
    let rows = client
        .query("SELECT key, worker FROM _sluice.objects WHERE dataflow = 'Orders' AND status = 'loaded' ORDER BY key", &[])
        .unwrap();
    rows.iter().map(|row| (row.get(0), row.get(1))).collect()
}

/// The process id in a worker's id (`host:pid:start`).
fn pid_of(worker: &str) -> u32 {
    worker.split(':').nth(1).and_then(|pid| pid.parse().ok()).unwrap_or(0)
}

fn assert_every_object_once(database: &TestDatabase, objects: usize) {
    let (rows, distinct, markers) = loaded(database);
    assert_eq!(markers, objects as i64, "every object committed once");
    assert_eq!(rows, (objects * ROWS) as i64, "no object's rows twice");
    assert_eq!(distinct, rows, "no row twice");
}

#[test]
fn three_workers_share_a_run_and_load_every_object_once() {
    let s3 = bucket(24, Duration::from_millis(300));
    let database = TestDatabase::create();
    let config = configuration(&s3, &database, "5s");
    let workers: Vec<(Daemon, tempfile::TempDir)> = (0..3).map(|_| worker(&config, 2, &[])).collect();
    let planner = &workers[0].0;
    planner.wait_until("three workers", A_RUN, |d| d.json("/api/workers").as_array().unwrap().len() == 3);

    planner.run("Orders");
    planner.wait_until("the run to spread", A_RUN, |d| {
        d.dataflow("Orders").get("work").is_some_and(|work| work["workers"].as_u64() >= Some(2))
    });
    let run = planner.wait_for_run_end("Orders", 0);
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["objects"], 24);
    assert_eq!(run["rows_written"], 24 * ROWS);
    assert_every_object_once(&database, 24);

    let pids: HashSet<u32> = workers.iter().map(|(daemon, _)| daemon.pid()).collect();
    let took_part: HashSet<u32> =
        loaded_by(&database).iter().filter_map(|(_, worker)| worker.as_deref().map(pid_of)).collect();
    assert_eq!(took_part, pids, "all three workers loaded objects: {:?}", loaded_by(&database));

    // Each worker is listed, alive, by every daemon's API and by `sluice dataflows --workers`.
    let listed = workers[2].0.json("/api/workers");
    let listed: HashSet<u32> =
        listed.as_array().unwrap().iter().map(|w| w["pid"].as_u64().unwrap() as u32).collect();
    assert_eq!(listed, pids);
    let cli = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .current_dir(workers[1].1.path())
        .args(["dataflows", "--workers", "--json"])
        .output()
        .unwrap();
    assert!(cli.status.success(), "{}", String::from_utf8_lossy(&cli.stderr));
    let cli: Value = serde_json::from_slice(&cli.stdout).unwrap();
    assert!(
        cli.as_array()
            .unwrap()
            .iter()
            .all(|w| w["alive"] == true && w["loading"].as_array().unwrap().is_empty()),
        "{cli}"
    );
    assert_eq!(cli.as_array().unwrap().len(), 3);

    // A second run finds nothing new, and no work is left behind.
    planner.run("Orders");
    let second = planner.wait_for_run_end("Orders", 1);
    assert_eq!(second["objects"], 0, "{second}");
    let left: i64 = database.client().query_one("SELECT count(*) FROM _sluice.work", &[]).unwrap().get(0);
    assert_eq!(left, 0);
}

#[test]
fn a_worker_killed_mid_object_loses_its_claims_to_the_others() {
    let s3 = bucket(10, Duration::from_millis(2500));
    let database = TestDatabase::create();
    let config = configuration(&s3, &database, "2s");
    let (planner, _a) = worker(&config, 1, &[]);
    let (mut doomed, _b) = worker(&config, 2, &[]);
    let (_third, _c) = worker(&config, 1, &[]);
    let doomed_pid = doomed.pid();

    planner.run("Orders");
    let mut held = Vec::new();
    planner.wait_until("the doomed worker to hold objects", A_RUN, |d| {
        let workers = d.json("/api/workers");
        let doomed =
            workers.as_array().unwrap().iter().find(|w| w["pid"].as_u64() == Some(doomed_pid.into()));
        held = doomed.map(|w| w["loading"].as_array().unwrap().clone()).unwrap_or_default();
        !held.is_empty()
    });
    doomed.kill();

    let run = planner.wait_for_run_end("Orders", 0);
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["objects"], 10);
    assert_every_object_once(&database, 10);
    let by = loaded_by(&database);
    for object in &held {
        let key = object.as_str().unwrap().trim_start_matches("Orders: ");
        let (_, worker) = by.iter().find(|(k, _)| k == key).unwrap_or_else(|| panic!("{key} loaded: {by:?}"));
        assert_ne!(worker.as_deref().map(pid_of), Some(doomed_pid), "{key} was taken over");
    }
    let gone = planner.json("/api/workers");
    let gone =
        gone.as_array().unwrap().iter().find(|w| w["pid"].as_u64() == Some(doomed_pid.into())).cloned();
    assert_eq!(gone.unwrap()["alive"], false, "the killed worker shows as gone");
}

#[test]
fn a_worker_whose_clock_runs_an_hour_behind_holds_its_claims_by_the_databases_clock() {
    assert!(
        Path::new(LIBFAKETIME).exists(),
        "this test runs a worker under libfaketime ({LIBFAKETIME}, Debian's package faketime, which .ci/run installs)"
    );
    let s3 = bucket(12, Duration::from_millis(1000));
    let database = TestDatabase::create();
    let config = configuration(&s3, &database, "3s");
    let (planner, _a) = worker(&config, 1, &[]);
    // The wall clock alone is an hour behind: the monotonic clock that timeouts use stays true.
    let faked = [
        ("LD_PRELOAD", LIBFAKETIME.to_string()),
        ("FAKETIME", "-1h".to_string()),
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1".to_string()),
    ];
    let an_hour_ago =
        |at: SystemTime| humantime::format_rfc3339_seconds(at - Duration::from_secs(3600)).to_string();
    let before = an_hour_ago(SystemTime::now());
    let (behind, _b) = worker(&config, 3, &faked);
    let after = an_hour_ago(SystemTime::now());
    let log = behind.log_text();
    assert!(
        log.contains(&before[..13]) || log.contains(&after[..13]),
        "the worker's own clock is an hour behind ({before}):\n{log}"
    );

    planner.run("Orders");
    let run = planner.wait_for_run_end("Orders", 0);
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_every_object_once(&database, 12);
    let took_part: HashSet<u32> =
        loaded_by(&database).iter().filter_map(|(_, worker)| worker.as_deref().map(pid_of)).collect();
    assert!(took_part.contains(&behind.pid()), "the worker behind loaded objects: {took_part:?}");
    // Had its claims gone by its own clock, they would have expired an hour ago: taken over at once.
    for log in [planner.log_text(), behind.log_text()] {
        assert!(
            !log.contains("taken over") && !log.contains("expired before it was renewed"),
            "no claim expired or was taken over:\n{log}"
        );
    }
    let workers = planner.json("/api/workers");
    let listed =
        workers.as_array().unwrap().iter().find(|w| w["pid"].as_u64() == Some(behind.pid().into())).cloned();
    let age = listed.unwrap()["heartbeat_age_seconds"].as_f64().unwrap();
    assert!(age < 3.0, "its heartbeat is {age}s old by the database's clock, not an hour");
}

#[test]
fn an_embedding_program_runs_a_worker_beside_a_run() {
    let s3 = bucket(12, Duration::from_millis(300));
    let database = TestDatabase::create();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("connector.toml");
    std::fs::write(&path, configuration(&s3, &database, "5s")).unwrap();
    let config = Config::load(&path).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let done = std::sync::atomic::AtomicBool::new(false);
    let (ready, started) = std::sync::mpsc::channel();
    let (report, platform_worker) = std::thread::scope(|scope| {
        // The platform's own worker, claiming the objects of whatever run queues them.
        let platform = scope.spawn(|| {
            let worker = Worker::start(&config.state_database(), config.lease_timeout()).unwrap();
            let runner = Runner::new(&config, support::host(), runtime.handle().clone());
            let shared = SharedObjects::new(&runner, "Orders").unwrap();
            ready.send(()).unwrap();
            let mut taken = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                taken += shared.work(&worker, None, &Quiet).unwrap();
                std::thread::sleep(Duration::from_millis(50));
            }
            (worker.id().to_string(), taken)
        });
        started.recv().unwrap();
        let report =
            Runner::new(&config, support::host(), runtime.handle().clone()).run("Orders", &Quiet).unwrap();
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        (report, platform.join().unwrap())
    });
    assert_eq!(report.status, sluice::state::RunStatus::Succeeded, "{:?}", report.error);
    assert_eq!(report.counts.objects, 12);
    assert_every_object_once(&database, 12);
    let (id, taken) = platform_worker;
    assert!(taken > 0, "the platform's worker loaded objects");
    let by = loaded_by(&database);
    assert_eq!(by.iter().filter(|(_, worker)| worker.as_deref() == Some(id.as_str())).count(), taken);
}

#[test]
fn a_second_daemon_on_sqlite_state_is_refused() {
    let shared = tempfile::tempdir().unwrap();
    let state = shared.path().join("state.db");
    let config = |port: u16| {
        format!(
            "{}[state]\nurl = \"sqlite://{}\"\n\n[dataflows.Orders]\nschedule = \"manual\"\nsource = {{ type = \"local\", path = \".\" }}\nformat = {{ plugin = \"csv\" }}\n",
            daemon_section(port, ""),
            state.display()
        )
    };
    let first_dir = tempfile::tempdir().unwrap();
    let port = free_port();
    std::fs::write(first_dir.path().join("connector.toml"), config(port)).unwrap();
    let first = Daemon::start(first_dir.path(), port);

    let second_dir = tempfile::tempdir().unwrap();
    std::fs::write(second_dir.path().join("connector.toml"), config(free_port())).unwrap();
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .current_dir(second_dir.path())
        .arg("daemon")
        .env("SLUICE_CACHE_DIR", support::root().join("target").join("test-plugin-cache"))
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains(&format!("another sluice daemon (pid {}", first.pid())), "{stderr}");
    assert!(stderr.contains("PostgreSQL"), "it says how to run several: {stderr}");
    assert!(Path::new(&format!("{}.daemon.lock", state.display())).exists());
}
