//! `sluice daemon` as an operator runs it: the example dataflows on their schedules, the HTTP API and
//! metrics, reloads of the configuration and of plugins (good and bad), a stop in the middle of a large
//! object, and a state store or sink database out of reach at a scheduled time.

mod support;

use reqwest::Method;
use serde_json::Value;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};
use support::daemon::{Daemon, PROMPTLY, bundled_wasm, daemon_section, free_port};

/// Writes `connector.toml` in `dir`: the `[daemon]` section for `port`, then `rest`.
fn configure(dir: &Path, port: u16, daemon: &str, rest: &str) {
    std::fs::write(dir.join("connector.toml"), format!("{}{rest}", daemon_section(port, daemon))).unwrap();
}

/// The example configuration, listening on `port`.
fn example_on(port: u16) -> tempfile::TempDir {
    let dir = support::example();
    let path = dir.path().join("connector.toml");
    let example = std::fs::read_to_string(&path).unwrap();
    let listen = "listen = \"127.0.0.1:7878\"";
    assert!(example.contains(listen), "the example's [daemon] section sets {listen}");
    std::fs::write(&path, example.replace(listen, &format!("listen = \"127.0.0.1:{port}\""))).unwrap();
    dir
}

/// A folder of a test's own with a `data/` folder, holding `data/a.csv` (one row) where `with_a_file`.
fn data_folder(with_a_file: bool) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    if with_a_file {
        std::fs::write(dir.path().join("data/a.csv"), "id\n1\n").unwrap();
    }
    dir
}

/// `[dataflows.NAME]` over `data/` with `schedule`, CSV unless `more` names another format, and `more`.
fn local_flow(name: &str, schedule: &str, more: &str) -> String {
    let format = if more.contains("format =") { "" } else { "format = { plugin = \"csv\" }\n" };
    format!(
        "[dataflows.{name}]\nschedule = \"{schedule}\"\nsource = {{ type = \"local\", path = \"data\" }}\n{format}{more}\n"
    )
}

fn succeeded(daemon: &Daemon, name: &str) -> bool {
    daemon.dataflow(name)["status"] == "succeeded"
}

fn sluice(dir: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .current_dir(dir)
        .args(args)
        .env("SLUICE_CACHE_DIR", support::root().join("target").join("test-plugin-cache"))
        .env_remove("SLUICE_STATE_URL")
        .env_remove("SLUICE_SINK_URL")
        .output()
        .unwrap()
}

/// Rows of `table` in the test's `sluice.db`; 0 where the table was never made.
fn rows(dir: &Path, table: &str) -> i64 {
    let db = rusqlite::Connection::open(dir.join("sluice.db")).unwrap();
    db.query_row(&format!("SELECT count(*) FROM {table}"), [], |row| row.get(0)).unwrap_or(0)
}

#[test]
fn the_example_runs_on_schedule_and_the_api_shows_lists_runs_and_counts() {
    let port = free_port();
    let dir = example_on(port);
    let daemon = Daemon::start_with(dir.path(), port, &["--log-format", "json"], &[]);

    // None of the example's dataflows ran before: each takes its first sync at start-up.
    daemon.wait_until("the first syncs", PROMPTLY, |d| {
        ["Orders", "Customers", "Products"].iter().all(|n| succeeded(d, n))
    });
    let orders = daemon.dataflow("Orders");
    assert_eq!(orders["type"], "local ─► sqlite");
    assert_eq!(orders["tables_count"], 1);
    assert_eq!(orders["schedule"], "daily");
    assert!(
        orders["next_run"].as_str().unwrap().ends_with("T00:00:00Z"),
        "daily runs at midnight UTC: {orders}"
    );
    for field in ["created", "updated", "last_refresh"] {
        assert!(orders[field].is_string(), "{field}: {orders}");
    }
    assert_eq!(daemon.dataflow("Products")["schedule"], "every 6h");

    let detail = daemon.json("/api/dataflows/Orders");
    assert_eq!(detail["description"], "Monthly order exports; gzip files are read as they are");
    assert_eq!(detail["tables"][0]["table"], "orders");
    assert_eq!(detail["tables"][0]["rows"], 7);
    let runs = daemon.runs("Orders");
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["rows_written"], 7);
    assert_eq!(runs[0]["rows_rejected"], 1);
    let objects = daemon.json(&format!("/api/dataflows/Orders/runs/{}", runs[0]["run"]));
    assert_eq!(objects.as_array().unwrap().len(), 2, "{objects}");
    // The rejected rows hold the data itself: served as writes are, with the header (or the token).
    let (status, rejects) = daemon.write(Method::GET, "/api/dataflows/Orders/rejects");
    assert_eq!(status, 200, "{rejects}");
    assert_eq!(rejects.as_array().unwrap().len(), 1, "{rejects}");
    assert_eq!((rejects[0]["line"].as_u64(), rejects[0]["table"].as_str()), (Some(5), Some("orders")));
    assert!(rejects[0]["raw"].as_str().unwrap().starts_with("1004,"), "{rejects}");
    let (_, none) = daemon.write(Method::GET, "/api/dataflows/Orders/rejects?run=999&reason=fields");
    assert_eq!(none, serde_json::json!([]));
    let (status, _) = daemon.get("/api/dataflows/Orders/rejects");
    assert_eq!(status, 403, "not without the header");
    assert_eq!(daemon.write(Method::GET, "/api/dataflows/Nope/rejects").0, 404);
    let (status, body) = daemon.get("/metrics");
    assert_eq!(status, 200);
    for expected in [
        "sluice_runs_total{dataflow=\"Orders\",status=\"succeeded\"} 1",
        "sluice_rows_total{dataflow=\"Orders\"} 7",
        "sluice_rejected_rows_total{dataflow=\"Orders\"} 1",
        "sluice_objects_total{dataflow=\"Orders\"} 2",
        "sluice_bytes_read_total{dataflow=\"Orders\"} 641",
        "sluice_plugin_call_seconds_count{plugin=\"csv\"}",
        "sluice_last_success_timestamp_seconds{dataflow=\"Orders\"}",
    ] {
        assert!(body.contains(expected), "/metrics lacks {expected}:\n{body}");
    }

    // A replay, a write: Orders' one reject is the parser's, which only a new read of its file mends.
    let plain = reqwest::blocking::Client::new().post(daemon.url("/api/dataflows/Orders/replay")).send();
    assert_eq!(plain.unwrap().status().as_u16(), 403);
    let (status, replay) = daemon.write(Method::POST, "/api/dataflows/Orders/replay");
    assert_eq!(status, 200, "{replay}");
    assert_eq!((replay["status"].as_str(), replay["retried"].as_u64()), (Some("succeeded"), Some(0)));
    assert_eq!(replay["left"], 1, "{replay}");
    assert_eq!(daemon.write(Method::POST, "/api/dataflows/Nope/replay").0, 404);
    let (_, still) = daemon.write(Method::GET, "/api/dataflows/Orders/rejects");
    assert_eq!(still.as_array().unwrap().len(), 1, "{still}");
    // The preview shows records, data itself: with the header only. A diff is for a Stripe sink.
    assert_eq!(daemon.get("/api/dataflows/Orders/preview").0, 403);
    let (status, preview) = daemon.write(Method::GET, "/api/dataflows/Orders/preview");
    assert_eq!(status, 200, "{preview}");
    assert_eq!(preview["objects"].as_array().unwrap().len(), 2, "{preview}");
    assert!(preview["sample"]["records"][0]["customer"].is_string(), "{preview}");
    let (status, diff) = daemon.write(Method::GET, "/api/dataflows/Orders/diff");
    assert_eq!(status, 422, "{diff}");
    assert!(daemon.json("/api/dataflows/Orders")["config"].as_str().unwrap().contains("[dataflows.Orders]"));

    // Writes need the header a page of another origin cannot send; then Run, Rollback and Remove.
    let plain =
        reqwest::blocking::Client::new().post(daemon.url("/api/dataflows/Orders/run")).send().unwrap();
    assert_eq!(plain.status().as_u16(), 403);
    assert_eq!(daemon.write(Method::POST, "/api/dataflows/Nope/run").0, 404);
    let append = dir.path().join("examples/data/orders/orders-2026-12.csv");
    std::fs::write(&append, "id,customer,amount,currency,ordered_at\n2001,Ann,5.00,EUR,2026-12-01\n")
        .unwrap();
    daemon.run("Orders");
    let run = daemon.wait_for_run_end("Orders", 2);
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["rows_written"], 1);
    let (status, body) = daemon.write(Method::POST, "/api/dataflows/Orders/rollback");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rows_removed"], 1);
    assert_eq!(rows(dir.path(), "orders"), 7);
    let (status, body) = daemon.write(Method::DELETE, "/api/dataflows/Customers");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rows_removed"], 3);
    assert_eq!(daemon.dataflow("Customers")["status"], "never run");

    // --log-format json: every line a JSON object.
    let log = daemon.log_text();
    let first = log.lines().next().unwrap();
    let line: Value = serde_json::from_str(first).unwrap_or_else(|e| panic!("not JSON ({e}): {first}"));
    assert_eq!(line["message"], "sluice daemon listening");
    assert!(log.lines().all(|l| serde_json::from_str::<Value>(l).is_ok()), "{log}");
}

#[test]
fn a_schedule_with_seconds_runs_at_each_slot_and_manual_only_when_asked() {
    let port = free_port();
    let dir = data_folder(true);
    let flows = local_flow("Often", "*/2 * * * * *", "") + &local_flow("Asked", "manual", "");
    configure(dir.path(), port, "max_concurrent_runs = 1", &flows);
    let daemon = Daemon::start(dir.path(), port);
    daemon.wait_until("three runs of Often", PROMPTLY, |d| d.runs("Often").len() >= 3);
    let runs = daemon.runs("Often");
    assert!(runs.iter().all(|r| r["status"] == "succeeded"), "{runs:?}");
    // The first loaded the file; the later ones found nothing new.
    assert_eq!(runs.last().unwrap()["rows_written"], 1);
    assert_eq!(runs[0]["rows_written"], 0);
    assert!(daemon.runs("Asked").is_empty(), "a manual dataflow runs only when asked");
    assert_eq!(daemon.dataflow("Asked")["next_run"], Value::Null);
    daemon.run("Asked");
    assert_eq!(daemon.wait_for_run_end("Asked", 0)["status"], "succeeded");
}

#[test]
fn slots_missed_while_no_daemon_ran_are_one_run_at_start_up() {
    let port = free_port();
    let dir = example_on(port);
    let ran = sluice(dir.path(), &["run"]);
    assert!(ran.status.success(), "{}", String::from_utf8_lossy(&ran.stderr));
    // As if Orders last ran three days ago: three daily slots went by without a daemon.
    let state = rusqlite::Connection::open(dir.path().join("sluice-state.db")).unwrap();
    let three_days = 3 * 24 * 3600 * 1000;
    state.execute("UPDATE runs SET started_at = started_at - ?1, ended_at = ended_at - ?1 WHERE dataflow = 'Orders'", [three_days]).unwrap();
    drop(state);

    let daemon = Daemon::start(dir.path(), port);
    daemon.wait_until("the missed run of Orders", PROMPTLY, |d| {
        d.runs("Orders").len() == 2 && succeeded(d, "Orders")
    });
    // Give a wrongly repeated catch-up run the time to show.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(daemon.runs("Orders").len(), 2, "three missed slots are one run");
    assert_eq!(daemon.runs("Customers").len(), 1, "Customers ran after today's slot: nothing missed");
    assert_eq!(daemon.runs("Products").len(), 1);
}

#[test]
fn an_invalid_configuration_is_refused_and_the_one_before_keeps_running() {
    let port = free_port();
    let dir = data_folder(true);
    let flow = |name: &str| local_flow(name, "manual", "");
    configure(dir.path(), port, "", &flow("First"));
    let daemon = Daemon::start(dir.path(), port);
    assert_eq!(daemon.json("/healthz")["status"], "ok");

    configure(
        dir.path(),
        port,
        "",
        &format!(
            "{}[dataflows.Second]\nsource = {{ type = \"local\", path = \"data\" }}\nformat = {{ plugin = \"csv\" }}\nshedule = \"daily\"\n",
            flow("First")
        ),
    );
    daemon.wait_until("the reload to be refused", PROMPTLY, |d| d.json("/healthz")["status"] == "degraded");
    let health = daemon.json("/healthz");
    let problem = health["problems"][0].as_str().unwrap();
    assert!(
        problem.contains("line 13")
            && problem.contains("shedule")
            && problem.contains("the one before keeps running"),
        "{problem}"
    );
    assert_eq!(health["generation"], 1);
    assert!(daemon.log_text().contains("shedule"), "the refusal is logged");
    // The configuration before is the one in force: First runs, Second does not exist.
    assert_eq!(daemon.dataflow("Second"), Value::Null);
    daemon.run("First");
    assert_eq!(daemon.wait_for_run_end("First", 0)["status"], "succeeded");

    // Mended, with a new dataflow: in force, and the new dataflow's first sync runs at once.
    configure(
        dir.path(),
        port,
        "",
        &format!(
            "{}[dataflows.Second]\nsource = {{ type = \"local\", path = \"data\" }}\nformat = {{ plugin = \"csv\" }}\n",
            flow("First")
        ),
    );
    daemon.wait_until("the mended configuration", PROMPTLY, |d| d.json("/healthz")["status"] == "ok");
    daemon.wait_until("Second's first sync", PROMPTLY, |d| succeeded(d, "Second"));
    assert_eq!(daemon.json("/healthz")["generation"], 2);
}

#[test]
fn sighup_reloads_where_watching_is_off_and_sigint_stops() {
    let port = free_port();
    let dir = data_folder(false);
    let flow = |name: &str| local_flow(name, "manual", "");
    configure(dir.path(), port, "watch = false", &flow("First"));
    let mut daemon = Daemon::start(dir.path(), port);
    configure(dir.path(), port, "watch = false", &format!("{}{}", flow("First"), flow("Second")));
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(daemon.dataflow("Second"), Value::Null, "not watched: no reload without SIGHUP");
    daemon.signal("HUP");
    daemon.wait_until("the reload on SIGHUP", PROMPTLY, |d| d.dataflow("Second") != Value::Null);
    assert_eq!(daemon.json("/healthz")["generation"], 2);
    // Ctrl-C on a terminal stops it as SIGTERM does.
    daemon.signal("INT");
    assert!(daemon.wait_exit(PROMPTLY).success());
}

#[test]
fn a_plugin_replaced_with_garbage_is_refused_and_the_one_loaded_before_keeps_serving() {
    let port = free_port();
    let dir = data_folder(false);
    let plugin = dir.path().join("mine.wasm");
    std::fs::copy(bundled_wasm("sluice_csv"), &plugin).unwrap();
    let flow = local_flow("Custom", "manual", "format = { plugin = \"mine\" }");
    configure(dir.path(), port, "", &format!("[plugins.mine]\npath = \"mine.wasm\"\n\n{flow}"));
    let daemon = Daemon::start(dir.path(), port);

    std::fs::write(&plugin, b"\0asm garbage, not a component").unwrap();
    daemon.wait_until("the garbage plugin to be refused", PROMPTLY, |d| {
        d.json("/healthz")["status"] == "degraded"
    });
    let problem = daemon.json("/healthz")["problems"][0].as_str().unwrap().to_string();
    assert!(problem.contains("plugin `mine`") && problem.contains("keeps serving"), "{problem}");
    std::fs::write(dir.path().join("data/a.csv"), "id,name\n1,Ann\n2,Bob\n").unwrap();
    daemon.run("Custom");
    let run = daemon.wait_for_run_end("Custom", 0);
    assert_eq!(run["status"], "succeeded", "the CSV plugin compiled before reads the file: {run}");
    assert_eq!(run["rows_written"], 2);

    // A new, valid plugin in its place is compiled and used from the next run on: JSON lines now.
    std::fs::copy(bundled_wasm("sluice_jsonl"), &plugin).unwrap();
    daemon.wait_until("the new plugin to load", PROMPTLY, |d| d.json("/healthz")["status"] == "ok");
    std::fs::write(dir.path().join("data/b.csv"), "{\"id\": 3, \"name\": \"Cy\"}\n").unwrap();
    daemon.run("Custom");
    let run = daemon.wait_for_run_end("Custom", 1);
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["rows_written"], 1, "the JSON-lines plugin read b.csv: {run}");
    assert_eq!(rows(dir.path(), "custom"), 3);
}

/// A CSV of `rows` rows, large enough that loading it takes a few seconds.
fn write_large_csv(path: &Path, rows: usize) {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    writeln!(file, "id,name,amount,note").unwrap();
    for i in 0..rows {
        writeln!(file, "{i},customer {i},{}.25,a note to make the row longer than a few bytes", i % 1000)
            .unwrap();
    }
    file.flush().unwrap();
}

const LARGE: usize = 5_000_000;

/// A dataflow `Big` over `data/` with a large `a-large.csv` and a small `b-small.csv`, listed in that order.
fn large_object_dataflow(port: u16, shutdown_timeout: &str) -> tempfile::TempDir {
    let dir = data_folder(false);
    write_large_csv(&dir.path().join("data/a-large.csv"), LARGE);
    std::fs::write(dir.path().join("data/b-small.csv"), "id,name,amount,note\n1,small,1.00,x\n").unwrap();
    let timeout = format!("shutdown_timeout = \"{shutdown_timeout}\"");
    configure(dir.path(), port, &timeout, &local_flow("Big", "manual", ""));
    dir
}

/// Starts a run of `Big` and sends SIGTERM while its large object loads.
fn stop_mid_object(daemon: &Daemon) -> Instant {
    daemon.run("Big");
    daemon.wait_until("the run to start", PROMPTLY, |d| d.dataflow("Big")["status"] == "running");
    std::thread::sleep(Duration::from_millis(300));
    daemon.signal("TERM");
    Instant::now()
}

#[test]
fn sigterm_mid_object_rolls_it_back_after_the_timeout_and_exits_0() {
    let port = free_port();
    let dir = large_object_dataflow(port, "200ms");
    let mut daemon = Daemon::start(dir.path(), port);
    let stopped = stop_mid_object(&daemon);
    let status = daemon.wait_exit(Duration::from_secs(15));
    assert!(status.success(), "{status}");
    assert!(stopped.elapsed() < Duration::from_secs(12), "exited {:?} after SIGTERM", stopped.elapsed());
    assert!(daemon.log_text().contains("rolling them back"), "{}", daemon.log_text());

    let history: Value =
        serde_json::from_slice(&sluice(dir.path(), &["history", "Big", "--json"]).stdout).unwrap();
    assert_eq!(history[0]["status"], "interrupted", "{history}");
    assert!(history[0]["error"].as_str().unwrap().contains("asked to stop"), "{history}");
    assert_eq!(rows(dir.path(), "big"), 0, "nothing of the rolled-back object stays");
    // The next run takes both objects whole.
    let ran = sluice(dir.path(), &["run"]);
    assert!(ran.status.success(), "{}", String::from_utf8_lossy(&ran.stderr));
    assert_eq!(rows(dir.path(), "big"), LARGE as i64 + 1);
}

#[test]
fn sigterm_mid_object_lets_it_commit_takes_no_other_and_exits_0() {
    let port = free_port();
    let dir = large_object_dataflow(port, "120s");
    let mut daemon = Daemon::start(dir.path(), port);
    stop_mid_object(&daemon);
    let status = daemon.wait_exit(Duration::from_secs(120));
    assert!(status.success(), "{status}");
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err(), "the API is closed once stopped");

    let history: Value =
        serde_json::from_slice(&sluice(dir.path(), &["history", "Big", "--json"]).stdout).unwrap();
    assert_eq!(history[0]["status"], "interrupted", "{history}");
    assert_eq!(history[0]["rows_written"], LARGE, "{history}");
    assert_eq!(
        rows(dir.path(), "big"),
        LARGE as i64,
        "the large object committed whole, the small one waits"
    );
    let ran = sluice(dir.path(), &["run"]);
    assert!(ran.status.success(), "{}", String::from_utf8_lossy(&ran.stderr));
    assert_eq!(rows(dir.path(), "big"), LARGE as i64 + 1);
}

#[test]
fn a_locked_state_store_at_a_scheduled_time_fails_that_run_and_the_next_slot_runs() {
    let port = free_port();
    let dir = data_folder(true);
    configure(dir.path(), port, "", &local_flow("Often", "*/2 * * * * *", ""));
    let daemon = Daemon::start(dir.path(), port);
    daemon.wait_until("a first run", PROMPTLY, |d| succeeded(d, "Often"));

    // Another program holds the state database's write lock past the store's busy timeout.
    let holder = rusqlite::Connection::open(dir.path().join("sluice-state.db")).unwrap();
    holder.execute_batch("BEGIN EXCLUSIVE").unwrap();
    daemon.wait_until("a run failed on the lock", Duration::from_secs(90), |d| {
        d.runs("Often").first().is_some_and(|r| r["recorded"] == false)
    });
    let failed = daemon.runs("Often")[0].clone();
    assert_eq!(failed["status"], "failed");
    assert!(failed["error"].as_str().unwrap().contains("locked"), "{failed}");
    assert_eq!(daemon.json("/healthz")["status"], "ok", "the daemon keeps running");
    assert!(daemon.get("/metrics").1.contains("sluice_runs_total{dataflow=\"Often\",status=\"failed\"}"));

    holder.execute_batch("ROLLBACK").unwrap();
    drop(holder);
    daemon.wait_until("the next slot to succeed", PROMPTLY, |d| {
        let runs = d.runs("Often");
        runs.iter().all(|r| r["recorded"] == true) && runs[0]["status"] == "succeeded"
    });
    // The failure went into the run history once the store took writes again.
    let runs = daemon.runs("Often");
    assert!(
        runs.iter().any(|r| r["status"] == "failed" && r["error"].as_str().unwrap().contains("locked")),
        "{runs:?}"
    );
}

#[test]
fn postgres_down_at_a_scheduled_time_fails_those_runs_and_the_daemon_keeps_running() {
    let database = sluice_testkit::TestDatabase::create();
    let port = free_port();
    let dir = data_folder(true);
    let flow = |url: &str| local_flow("Often", "*/2 * * * * *", &format!("sink = {{ url = \"{url}\" }}"));
    // Nothing listens on port 1: the sink's PostgreSQL is down.
    configure(dir.path(), port, "", &flow("postgres://postgres@127.0.0.1:1/test"));
    let daemon = Daemon::start(dir.path(), port);
    // Each failed run waits out the connection timeout (10 s) first.
    daemon.wait_until("two failed slots", Duration::from_secs(60), |d| {
        d.runs("Often").iter().filter(|r| r["status"] == "failed" && r["recorded"] == true).count() >= 2
    });
    let failed = daemon.runs("Often")[0].clone();
    assert!(failed["error"].as_str().unwrap().contains("127.0.0.1:1"), "{failed}");
    assert_eq!(daemon.json("/healthz")["status"], "ok");

    // PostgreSQL is back (here: the configuration points at one that is up): the next slot loads.
    configure(dir.path(), port, "", &flow(database.url()));
    daemon.wait_until("a slot to succeed", PROMPTLY, |d| succeeded(d, "Often"));
}

#[test]
fn at_most_max_concurrent_runs_run_at_once_and_the_others_wait_queued() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let mut flows = String::new();
    for name in ["One", "Two", "Three"] {
        let folder = dir.path().join(name);
        std::fs::create_dir(&folder).unwrap();
        write_large_csv(&folder.join("rows.csv"), 1_000_000);
        flows += &format!(
            "[dataflows.{name}]\nsource = {{ type = \"local\", path = \"{name}\" }}\nformat = {{ plugin = \"csv\" }}\n\n"
        );
    }
    configure(dir.path(), port, "max_concurrent_runs = 1", &flows);
    let daemon = Daemon::start(dir.path(), port);
    let (mut most_running, mut saw_queued) = (0, false);
    daemon.wait_until("the three first syncs", Duration::from_secs(120), |d| {
        let list = d.json("/api/dataflows");
        let statuses: Vec<&str> =
            list.as_array().unwrap().iter().map(|f| f["status"].as_str().unwrap()).collect();
        most_running = most_running.max(statuses.iter().filter(|s| **s == "running").count());
        saw_queued |= statuses.contains(&"queued");
        statuses.iter().all(|s| *s == "succeeded")
    });
    assert_eq!(most_running, 1, "one run at a time");
    assert!(saw_queued, "the others waited, queued");
}

#[test]
fn stripe_writes_through_the_daemon_need_the_token_and_are_counted_by_status_without_the_key_anywhere() {
    let stripe = sluice_testkit::stripe::StripeServer::start();
    let port = free_port();
    let dir = data_folder(false);
    std::fs::write(dir.path().join("data/products.csv"), "sku,title\nmug,Mug\ncup,Cup\n").unwrap();
    let sink = format!(
        "\n[dataflows.Catalog.sink]\ntype = \"stripe\"\nobject = \"products\"\napi_key = \"${{TEST_STRIPE_KEY}}\"\napi_base = \"{}\"\n\n\
         [dataflows.Catalog.template]\nplugin = \"map\"\noptions.object = \"products\"\n\
         [dataflows.Catalog.template.options.fields]\nid = \"sku\"\nname = \"title\"\n",
        stripe.url()
    );
    let catalog = local_flow("Catalog", "manual", &sink);
    configure(dir.path(), port, "token = \"${TEST_API_TOKEN}\"", &catalog);
    let key = sluice_testkit::stripe::TEST_KEY;
    let env = [("TEST_STRIPE_KEY", key.to_string()), ("TEST_API_TOKEN", "t0ken-for-tests".to_string())];
    let daemon = Daemon::start_with(dir.path(), port, &[], &env);

    let client = reqwest::blocking::Client::new();
    let url = daemon.url("/api/dataflows/Catalog/run");
    assert_eq!(client.post(&url).header("X-Requested-With", "x").send().unwrap().status().as_u16(), 401);
    assert_eq!(client.post(&url).bearer_auth("wrong").send().unwrap().status().as_u16(), 401);
    assert_eq!(client.post(&url).bearer_auth("t0ken-for-tests").send().unwrap().status().as_u16(), 202);
    let run = daemon.wait_for_run_end("Catalog", 0);
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(stripe.objects("products").len(), 2);

    let metrics = daemon.get("/metrics").1;
    assert!(metrics.contains("sluice_stripe_requests_total{method=\"POST\",status=\"200\"} 2"), "{metrics}");
    let everything = format!("{}{metrics}{}", daemon.log_text(), daemon.get("/api/dataflows/Catalog/runs").1);
    assert!(!everything.contains(key), "the Stripe key is in no log line, metric or run history");
    assert!(!everything.contains("t0ken-for-tests"), "nor is the API token");
}

#[test]
fn a_delta_dataflow_is_optimized_after_its_runs_at_most_once_per_optimize_every() {
    let port = free_port();
    let dir = data_folder(true);
    let flow = local_flow("Lake", "manual", "sink = { url = \"delta+file://lake\" }");
    configure(dir.path(), port, "optimize_every = \"1h\"", &flow);
    let daemon = Daemon::start(dir.path(), port);
    daemon.run("Lake");
    assert_eq!(daemon.wait_for_run_end("Lake", 0)["status"], "succeeded");
    std::fs::write(dir.path().join("data/b.csv"), "id\n2\n").unwrap();
    daemon.run("Lake");
    assert_eq!(daemon.wait_for_run_end("Lake", 1)["status"], "succeeded");
    daemon.wait_until("the optimize after the first run to be logged", PROMPTLY, |d| {
        d.log_text().contains("optimized")
    });
    // After the first run only: the second came within the hour.
    assert_eq!(daemon.log_text().matches("optimized").count(), 1, "{}", daemon.log_text());
    let log = std::fs::read_dir(dir.path().join("lake/lake/lake/_delta_log")).unwrap().count();
    assert!(log >= 4, "runs' fences and data, and the vacuum's versions: {log} log files");
}
