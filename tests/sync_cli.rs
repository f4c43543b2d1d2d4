//! `sluice run` and `sluice preview` as a user runs them: the example dataflows, incremental runs, a
//! process killed mid-run, and the configuration mistakes users make.

mod support;

use rusqlite::Connection;
use sluice_testkit::s3::{ACCESS_KEY, S3Server, SECRET_KEY};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

fn sluice(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sluice"));
    command
        .current_dir(dir)
        .env("SLUICE_CACHE_DIR", support::root().join("target").join("test-plugin-cache"))
        // The S3 tests' configurations read their secret key from the environment.
        .env("TEST_S3_SECRET", SECRET_KEY);
    command
}

fn run(dir: &Path, args: &[&str]) -> Output {
    sluice(dir).args(args).output().expect("running sluice")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The repository's connector.toml and sample files, copied where a test can change them.
fn example() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(support::root().join("connector.toml"), dir.path().join("connector.toml")).unwrap();
    for folder in ["orders", "customers", "products"] {
        let from = support::root().join("examples/data").join(folder);
        let to = dir.path().join("examples/data").join(folder);
        std::fs::create_dir_all(&to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
    dir
}

fn count(database: &Path, sql: &str) -> i64 {
    Connection::open(database).unwrap().query_row(sql, [], |row| row.get(0)).unwrap()
}

#[test]
fn the_example_loads_then_imports_nothing_new_then_a_touched_file_again() {
    let dir = example();
    let first = run(dir.path(), &["run"]);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first.stderr));
    let summary = text(&first.stdout);
    assert!(summary.contains("Orders: succeeded — 2 objects, 7 rows, 1 rejected"), "{summary}");
    assert!(summary.contains("Customers: succeeded — 1 objects, 3 rows, 0 rejected"), "{summary}");
    assert!(summary.contains("Products: succeeded — 1 objects, 3 rows, 0 rejected"), "{summary}");
    let tables = dir.path().join("sluice.db");
    assert_eq!(count(&tables, "SELECT count(*) FROM orders"), 7);
    assert_eq!(count(&tables, "SELECT count(*) FROM orders WHERE _sluice_object LIKE '%.csv.gz'"), 3);
    assert_eq!(
        count(&tables, "SELECT count(*) FROM _sluice_rejects WHERE dataflow = 'Orders' AND line = 5"),
        1
    );

    let second = run(dir.path(), &["run"]);
    assert_eq!(second.status.code(), Some(0));
    for name in ["Orders", "Customers", "Products"] {
        assert!(
            text(&second.stdout).contains(&format!("{name}: succeeded — 0 objects, 0 rows")),
            "{}",
            text(&second.stdout)
        );
    }

    let touched = dir.path().join("examples/data/orders/orders-2026-11.csv");
    std::fs::File::options()
        .write(true)
        .open(&touched)
        .unwrap()
        .set_modified(SystemTime::now() + Duration::from_secs(5))
        .unwrap();
    let third = run(dir.path(), &["run", "Orders"]);
    assert!(
        text(&third.stdout).contains("Orders: succeeded — 1 objects, 4 rows, 1 rejected"),
        "{}",
        text(&third.stdout)
    );
    assert_eq!(count(&tables, "SELECT count(*) FROM orders"), 11);
}

#[test]
fn preview_lists_what_the_next_run_imports_and_its_first_records_and_writes_nothing() {
    let dir = example();
    let output = run(dir.path(), &["preview", "Orders", "--records", "2"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(stdout.contains("Orders: 2 objects listed, 2 in the window"), "{stdout}");
    assert!(stdout.contains("orders/orders-2026-11.csv") && stdout.contains("new"), "{stdout}");
    assert_eq!(stdout.matches("{\"id\":").count(), 2, "{stdout}");
    assert!(!dir.path().join("sluice-state.db").exists() && !dir.path().join("sluice.db").exists());

    run(dir.path(), &["run", "Orders"]);
    let after = text(&run(dir.path(), &["preview", "Orders"]).stdout);
    assert!(after.contains("0 to import") && after.matches("already imported").count() == 2, "{after}");
}

/// An S3 server holding `objects` CSV objects of `rows` rows each, and a configuration that reads them
/// with the secret key taken from `TEST_S3_SECRET`.
fn many_objects(objects: u32, rows: u32) -> (S3Server, tempfile::TempDir) {
    let s3 = S3Server::start();
    s3.create_bucket("exports");
    for object in 0..objects {
        let mut body = String::from("id,object,note\n");
        for row in 0..rows {
            body.push_str(&format!("{},{object},\"row {row} of object {object}\"\n", object * rows + row));
        }
        s3.put(
            "exports",
            &format!("orders/{object:04}.csv"),
            body.as_bytes(),
            SystemTime::now() - Duration::from_secs(60),
        );
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("connector.toml"),
        format!(
            "[dataflows.Orders]\nsource = {{ type = \"s3\", bucket = \"exports\", endpoint = \"{}\", access_key_id = \"{ACCESS_KEY}\", secret_access_key = \"${{TEST_S3_SECRET}}\" }}\nformat = {{ plugin = \"csv\" }}\n",
            s3.endpoint()
        ),
    )
    .unwrap();
    (s3, dir)
}

/// Objects the sink has committed so far (0 before the first).
fn committed_objects(tables: &Path) -> i64 {
    Connection::open(tables)
        .and_then(|c| c.query_row("SELECT count(*) FROM _sluice_objects", [], |row| row.get::<_, i64>(0)))
        .unwrap_or(0)
}

/// Starts `sluice run` and waits until it has committed `objects` objects.
fn start_run(dir: &Path, objects: i64) -> std::process::Child {
    let mut child = sluice(dir).args(["run"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while committed_objects(&dir.join("sluice.db")) < objects {
        assert!(Instant::now() < deadline, "the run committed nothing in time");
        if child.try_wait().unwrap().is_some() {
            let output = child.wait_with_output().unwrap();
            panic!("the run ended before the test could act: {}", text(&output.stderr));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    child
}

#[test]
fn a_run_killed_mid_way_is_finished_by_the_next_with_every_row_once() {
    const OBJECTS: u32 = 200;
    const ROWS: u32 = 2_000;
    let (_s3, dir) = many_objects(OBJECTS, ROWS);
    let tables = dir.path().join("sluice.db");
    let mut child = start_run(dir.path(), 5);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let at_kill = committed_objects(&tables);
    assert!(at_kill < OBJECTS as i64, "killed in the middle ({at_kill} of {OBJECTS} objects committed)");

    let resumed = sluice(dir.path()).args(["run"]).output().unwrap();
    assert_eq!(resumed.status.code(), Some(0), "{}", text(&resumed.stderr));
    let total = (OBJECTS * ROWS) as i64;
    assert_eq!(count(&tables, "SELECT count(*) FROM orders"), total);
    assert_eq!(count(&tables, "SELECT count(DISTINCT id) FROM orders"), total);
    assert_eq!(
        count(&tables, "SELECT count(DISTINCT _sluice_object || ':' || _sluice_line) FROM orders"),
        total
    );

    let state = dir.path().join("sluice-state.db");
    assert_eq!(count(&state, "SELECT count(*) FROM runs WHERE status = 'interrupted'"), 1);
    assert_eq!(count(&state, "SELECT count(*) FROM objects WHERE status = 'loaded'"), OBJECTS as i64);

    // The ledger lost (a kill between the sink's commit and the ledger's): the sink's markers restore it.
    Connection::open(&state).unwrap().execute("DELETE FROM objects", []).unwrap();
    let again = sluice(dir.path()).args(["run"]).output().unwrap();
    assert!(text(&again.stdout).contains("Orders: succeeded — 0 objects"), "{}", text(&again.stdout));
    assert_eq!(count(&tables, "SELECT count(*) FROM orders"), total);
}

fn config_error(toml: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("connector.toml"), toml).unwrap();
    let output = run(dir.path(), &["run"]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    text(&output.stderr)
}

const LOCAL: &str = "source = { type = \"local\", path = \"data\" }\n";

#[test]
fn configuration_mistakes_name_the_dataflow_the_key_and_the_line() {
    let unknown_key = config_error(&format!(
        "[dataflows.Orders]\n{LOCAL}format = {{ plugin = \"csv\" }}\n\n[dataflows.Orders.sink]\ntable = \"orders\"\ntabel = \"x\"\n"
    ));
    for part in ["connector.toml line 7", "dataflows.Orders.sink.tabel", "unknown field `tabel`"] {
        assert!(unknown_key.contains(part), "`{part}` missing from: {unknown_key}");
    }

    let unknown_plugin =
        config_error(&format!("[dataflows.Orders]\n{LOCAL}format = {{ plugin = \"parquet\" }}\n"));
    for part in
        ["line 3", "dataflows.Orders.format.plugin", "unknown plugin `parquet`", "csv, tsv, json, jsonl"]
    {
        assert!(unknown_plugin.contains(part), "`{part}` missing from: {unknown_plugin}");
    }

    let bad_name =
        config_error(&format!("[dataflows.Orders-2024]\n{LOCAL}format = {{ plugin = \"csv\" }}\n"));
    for part in ["line 1", "`Orders-2024`", "starts with a letter and holds letters and digits only"] {
        assert!(bad_name.contains(part), "`{part}` missing from: {bad_name}");
    }

    let missing_env = config_error(
        "[dataflows.Orders]\nformat = { plugin = \"csv\" }\n[dataflows.Orders.source]\ntype = \"s3\"\nbucket = \"b\"\nsecret_access_key = \"${SLUICE_TEST_UNSET_SECRET}\"\naccess_key_id = \"x\"\n",
    );
    for part in
        ["line 6", "dataflows.Orders.source.secret_access_key", "`SLUICE_TEST_UNSET_SECRET` is not set"]
    {
        assert!(missing_env.contains(part), "`{part}` missing from: {missing_env}");
    }

    let inline_env = config_error(
        "[dataflows.Orders]\nformat = { plugin = \"csv\" }\nsource = { type = \"s3\", bucket = \"b\", access_key_id = \"x\", secret_access_key = \"${SLUICE_TEST_UNSET_SECRET}\" }\n",
    );
    assert!(inline_env.contains("line 3, `dataflows.Orders.source.secret_access_key`"), "{inline_env}");

    let bad_schedule = config_error(&format!(
        "[dataflows.Orders]\n{LOCAL}format = {{ plugin = \"csv\" }}\nschedule = \"hourly\"\n"
    ));
    assert!(bad_schedule.contains("line 4") && bad_schedule.contains("schedule `hourly`"), "{bad_schedule}");

    let bad_source =
        config_error("[dataflows.Orders]\nsource = { type = \"ftp\" }\nformat = { plugin = \"csv\" }\n");
    assert!(bad_source.contains("line 2") && bad_source.contains("ftp"), "{bad_source}");

    let no_dataflow = run(tempfile::tempdir().unwrap().path(), &["run"]);
    assert_eq!(no_dataflow.status.code(), Some(2));
    assert!(text(&no_dataflow.stderr).contains("no connector.toml"), "{}", text(&no_dataflow.stderr));
}

#[test]
fn a_dataflow_that_is_not_configured_is_named_with_those_that_are() {
    let dir = example();
    let output = run(dir.path(), &["run", "Refunds"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output.stderr)
            .contains("no dataflow `Refunds`; the dataflows are: Customers, Orders, Products")
    );
}

#[test]
fn a_partial_run_exits_1_naming_the_object_that_failed_and_the_next_run_does_not_retry_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    std::fs::write(dir.path().join("data/good.json"), "[{\"id\": 1}, {\"id\": 2}]").unwrap();
    std::fs::write(dir.path().join("data/bad.json"), "[{\"id\": 3},\n{\"id\": }]").unwrap();
    std::fs::write(
        dir.path().join("connector.toml"),
        "[dataflows.Items]\nsource = { type = \"local\", path = \"data\" }\nformat = { plugin = \"json\" }\n",
    )
    .unwrap();
    let output = run(dir.path(), &["run"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output.stdout).contains("Items: partial — 2 objects, 2 rows"), "{}", text(&output.stdout));
    let stderr = text(&output.stderr);
    for part in ["dataflow `Items`, object `bad.json`", "plugin `json`", "line 2", "1 of 2 objects failed"] {
        assert!(stderr.contains(part), "`{part}` missing from: {stderr}");
    }
    assert_eq!(count(&dir.path().join("sluice.db"), "SELECT count(*) FROM items"), 2);
    let again = run(dir.path(), &["run"]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again.stderr));
    assert!(text(&again.stdout).contains("Items: succeeded — 0 objects"), "{}", text(&again.stdout));
}

#[test]
fn a_source_of_more_than_1000_objects_is_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    for n in 0..1_001 {
        std::fs::write(dir.path().join(format!("data/{n}.csv")), "id\n1\n").unwrap();
    }
    std::fs::write(
        dir.path().join("connector.toml"),
        "[dataflows.Many]\nsource = { type = \"local\", path = \"data\" }\nformat = { plugin = \"csv\" }\n",
    )
    .unwrap();
    let output = run(dir.path(), &["preview", "Many", "--records", "1"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("holds more than 1000 objects and every run lists them all"), "{stderr}");
    assert!(text(&output.stdout).contains("1001 objects listed"), "{}", text(&output.stdout));
}

#[test]
fn tables_take_their_columns_and_types_from_the_records_and_grow_new_columns() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    let path = dir.path().join("data/1.jsonl");
    std::fs::write(&path, "{\"id\": 1, \"name\": \"Ann\", \"score\": 1.5}\n").unwrap();
    let an_hour_ago = SystemTime::now() - Duration::from_secs(3600);
    std::fs::File::options().write(true).open(&path).unwrap().set_modified(an_hour_ago).unwrap();
    std::fs::write(
        dir.path().join("connector.toml"),
        "[dataflows.People]\nsource = { type = \"local\", path = \"data\" }\nformat = { plugin = \"jsonl\" }\n",
    )
    .unwrap();
    assert_eq!(run(dir.path(), &["run"]).status.code(), Some(0));
    std::fs::write(
        dir.path().join("data/2.jsonl"),
        "{\"id\": 2, \"name\": \"Bo\", \"vip\": true, \"tags\": [\"a\"]}\n",
    )
    .unwrap();
    let output = run(dir.path(), &["run"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));

    let tables = Connection::open(dir.path().join("sluice.db")).unwrap();
    let columns: Vec<(String, String)> = tables
        .prepare("SELECT name, type FROM pragma_table_info('people')")
        .unwrap()
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let expected = [
        ("_sluice_object", "TEXT"),
        ("_sluice_line", "INTEGER"),
        ("_sluice_run", "INTEGER"),
        ("id", "INTEGER"),
        ("name", "TEXT"),
        ("score", "REAL"),
        ("vip", "INTEGER"),
        ("tags", "TEXT"),
    ];
    assert_eq!(columns, expected.map(|(n, t)| (n.to_string(), t.to_string())));
    type Row = (i64, Option<f64>, Option<i64>, Option<String>);
    let rows: Vec<Row> = tables
        .prepare("SELECT id, score, vip, tags FROM people ORDER BY id")
        .unwrap()
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(rows, [(1, Some(1.5), None, None), (2, None, Some(1), Some("[\"a\"]".to_string()))]);
}

#[test]
fn a_second_run_of_a_dataflow_is_refused_while_the_first_runs_and_history_tells_both() {
    const OBJECTS: u32 = 40;
    const ROWS: u32 = 500;
    let (s3, dir) = many_objects(OBJECTS, ROWS);
    // A slow store: the first run takes seconds, whatever the machine, so the others meet it running.
    s3.set_get_delay(Duration::from_millis(100));
    let first = start_run(dir.path(), 1);

    let listing = run(dir.path(), &["dataflows", "--json"]);
    let listed: serde_json::Value = serde_json::from_slice(&listing.stdout).unwrap();
    assert_eq!(listed[0]["status"], "running", "{listed}");

    for refused in [&["run", "Orders"][..], &["rollback", "Orders"], &["remove", "Orders", "--yes"]] {
        let output = run(dir.path(), refused);
        assert_eq!(output.status.code(), Some(1), "{refused:?}");
        let stderr = text(&output.stderr);
        assert!(
            stderr.contains("dataflow `Orders` is being run by another process (pid"),
            "{refused:?}: {stderr}"
        );
    }

    let first = first.wait_with_output().unwrap();
    assert_eq!(first.status.code(), Some(0), "{}", text(&first.stderr));
    let tables = dir.path().join("sluice.db");
    assert_eq!(count(&tables, "SELECT count(*) FROM orders"), (OBJECTS * ROWS) as i64, "never both wrote");
    assert_eq!(count(&tables, "SELECT count(DISTINCT id) FROM orders"), (OBJECTS * ROWS) as i64);

    let history: serde_json::Value =
        serde_json::from_slice(&run(dir.path(), &["history", "Orders", "--json"]).stdout).unwrap();
    assert_eq!(history.as_array().unwrap().len(), 1, "the refused run left no record: {history}");
    assert_eq!(history[0]["status"], "succeeded");
    assert_eq!(history[0]["objects"], OBJECTS);
    assert_eq!(history[0]["rows_written"], OBJECTS * ROWS);
}

#[test]
fn the_dataflow_list_and_history_show_status_tables_times_and_the_error_of_a_failed_run() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    std::fs::write(dir.path().join("data/good.json"), "[{\"id\": 1}]").unwrap();
    std::fs::write(dir.path().join("data/bad.json"), "[{\"id\": }]").unwrap();
    std::fs::write(
        dir.path().join("connector.toml"),
        "[dataflows.Items]\nsource = { type = \"local\", path = \"data\" }\nformat = { plugin = \"json\" }\n\n\
         [dataflows.Later]\nsource = { type = \"local\", path = \"data\" }\nformat = { plugin = \"json\" }\n",
    )
    .unwrap();
    let before = text(&run(dir.path(), &["dataflows"]).stdout);
    assert!(before.starts_with("NAME"), "{before}");
    assert!(before.contains("Items  local ─► sqlite  never run  0       —"), "{before}");
    run(dir.path(), &["run", "Items"]);

    let listed: serde_json::Value =
        serde_json::from_slice(&run(dir.path(), &["dataflows", "--json"]).stdout).unwrap();
    let items = &listed[0];
    assert_eq!((items["name"].as_str(), items["type"].as_str()), (Some("Items"), Some("local ─► sqlite")));
    assert_eq!((items["status"].as_str(), items["tables_count"].as_u64()), (Some("partial"), Some(1)));
    assert!(
        items["created"].is_string() && items["updated"].is_string() && items["last_refresh"].is_string()
    );
    assert_eq!(listed[1]["status"], "never run");
    assert!(listed[1]["created"].is_null());

    let history = text(&run(dir.path(), &["history", "Items"]).stdout);
    assert!(history.contains("partial") && history.contains("2 (1 failed)"), "{history}");
    assert!(
        history.contains("object `bad.json`: plugin `json` cannot read `bad.json` at line 1"),
        "{history}"
    );
    assert!(text(&run(dir.path(), &["history", "Later"]).stdout).contains("Later has not run yet"));
    let unknown = run(dir.path(), &["history", "Nope"]);
    assert_eq!(unknown.status.code(), Some(2));
}

#[test]
fn remove_deletes_the_tables_ledger_cursor_and_history_and_the_next_run_starts_from_scratch() {
    let dir = example();
    run(dir.path(), &["run"]);
    let tables = dir.path().join("sluice.db");

    let unconfirmed = run(dir.path(), &["remove", "Orders"]);
    assert_eq!(unconfirmed.status.code(), Some(2));
    assert!(text(&unconfirmed.stderr).contains("pass --yes to confirm"), "{}", text(&unconfirmed.stderr));
    assert_eq!(count(&tables, "SELECT count(*) FROM orders"), 7, "nothing removed without confirmation");

    let unknown = run(dir.path(), &["remove", "Refunds", "--yes"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(text(&unknown.stderr).contains("no dataflow `Refunds`"), "{}", text(&unknown.stderr));

    let removed = run(dir.path(), &["remove", "Orders", "--yes"]);
    assert_eq!(removed.status.code(), Some(0), "{}", text(&removed.stderr));
    assert!(text(&removed.stdout).contains("(7 rows)"), "{}", text(&removed.stdout));
    assert_eq!(count(&tables, "SELECT count(*) FROM sqlite_master WHERE name = 'orders'"), 0);
    assert_eq!(count(&tables, "SELECT count(*) FROM _sluice_rejects WHERE dataflow = 'Orders'"), 0);
    assert_eq!(count(&tables, "SELECT count(*) FROM customers"), 3, "other dataflows are untouched");
    let state = dir.path().join("sluice-state.db");
    for table in ["runs", "objects", "cursors"] {
        assert_eq!(
            count(&state, &format!("SELECT count(*) FROM {table} WHERE dataflow = 'Orders'")),
            0,
            "{table}"
        );
    }
    let listed: serde_json::Value =
        serde_json::from_slice(&run(dir.path(), &["dataflows", "--json"]).stdout).unwrap();
    let orders = listed.as_array().unwrap().iter().find(|d| d["name"] == "Orders").unwrap();
    assert_eq!((orders["status"].as_str(), orders["tables_count"].as_u64()), (Some("never run"), Some(0)));

    let again = run(dir.path(), &["run", "Orders"]);
    assert!(
        text(&again.stdout).contains("Orders: succeeded — 2 objects, 7 rows, 1 rejected"),
        "{}",
        text(&again.stdout)
    );
}

#[test]
fn a_ledger_that_says_more_than_the_sink_holds_is_squared_and_the_objects_imported_again() {
    let dir = example();
    // An older object, so that the cursor (at the newer one) has moved well past it.
    let older = dir.path().join("examples/data/orders/orders-2026-10.csv.gz");
    let ten_days_ago = SystemTime::now() - Duration::from_secs(10 * 86_400);
    std::fs::File::options().write(true).open(&older).unwrap().set_modified(ten_days_ago).unwrap();
    run(dir.path(), &["run", "Orders"]);
    // The tables database lost (restored from an old backup, say): the ledger and cursor still say loaded.
    for file in ["sluice.db", "sluice.db-wal", "sluice.db-shm"] {
        let _ = std::fs::remove_file(dir.path().join(file));
    }
    let output = run(dir.path(), &["run", "Orders"]);
    assert!(
        text(&output.stdout).contains("Orders: succeeded — 2 objects, 7 rows"),
        "{}",
        text(&output.stdout)
    );
    assert_eq!(count(&dir.path().join("sluice.db"), "SELECT count(*) FROM orders"), 7);
}

/// Every row of `table` in storage order, each value with its SQLite type, and the table's columns: what
/// "the same query results, byte for byte" compares.
fn dump(database: &Path, table: &str) -> String {
    let connection = Connection::open(database).unwrap();
    let columns: Vec<String> = connection
        .prepare(&format!("SELECT name || ' ' || type FROM pragma_table_info('{table}')"))
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut out = format!("{columns:?}\n");
    let mut statement = connection.prepare(&format!("SELECT rowid, * FROM {table} ORDER BY rowid")).unwrap();
    let width = statement.column_count();
    let mut rows = statement.query([]).unwrap();
    while let Some(row) = rows.next().unwrap() {
        let values: Vec<rusqlite::types::Value> = (0..width).map(|i| row.get(i).unwrap()).collect();
        out.push_str(&format!("{values:?}\n"));
    }
    out
}

#[test]
fn rollback_after_append_restores_the_earlier_rows_and_columns_exactly_and_twice_goes_back_two_runs() {
    let dir = example();
    let tables = dir.path().join("sluice.db");
    let nothing = run(dir.path(), &["rollback", "Orders"]);
    assert_eq!(nothing.status.code(), Some(1));
    assert!(
        text(&nothing.stderr).contains("dataflow `Orders` has no run to roll back"),
        "{}",
        text(&nothing.stderr)
    );

    run(dir.path(), &["run", "Orders"]);
    let after_first = dump(&tables, "orders");
    let rejects_after_first = count(&tables, "SELECT count(*) FROM _sluice_rejects");
    std::fs::write(
        dir.path().join("examples/data/orders/orders-2026-12.csv"),
        "id,customer,email,amount,currency,created,note,coupon\n2001,Ann,ann@example.com,5.00,usd,2026-12-01T00:00:00Z,,XMAS\n2002,Bo\n",
    )
    .unwrap();
    let second = run(dir.path(), &["run", "Orders"]);
    assert!(text(&second.stdout).contains("1 objects, 1 rows, 1 rejected"), "{}", text(&second.stdout));
    assert_ne!(dump(&tables, "orders"), after_first);

    let rolled = run(dir.path(), &["rollback", "Orders"]);
    assert_eq!(rolled.status.code(), Some(0), "{}", text(&rolled.stderr));
    assert!(text(&rolled.stdout).contains("(1 rows removed)"), "{}", text(&rolled.stdout));
    assert_eq!(dump(&tables, "orders"), after_first, "rows, values, types and columns as before the run");
    assert_eq!(count(&tables, "SELECT count(*) FROM _sluice_rejects"), rejects_after_first);
    let history: serde_json::Value =
        serde_json::from_slice(&run(dir.path(), &["history", "Orders", "--json"]).stdout).unwrap();
    assert_eq!(history[0]["status"], "rolled back");

    // The rolled-back object is imported again by the next run, once.
    let again = run(dir.path(), &["run", "Orders"]);
    assert!(text(&again.stdout).contains("Orders: succeeded — 1 objects, 1 rows"), "{}", text(&again.stdout));
    assert_eq!(count(&tables, "SELECT count(*) FROM orders WHERE coupon = 'XMAS'"), 1);

    // Twice: back past the re-import, then past the first run (which created the table).
    assert_eq!(run(dir.path(), &["rollback", "Orders"]).status.code(), Some(0));
    assert_eq!(dump(&tables, "orders"), after_first);
    assert_eq!(run(dir.path(), &["rollback", "Orders"]).status.code(), Some(0));
    assert_eq!(count(&tables, "SELECT count(*) FROM sqlite_master WHERE name = 'orders'"), 0);
    assert_eq!(run(dir.path(), &["rollback", "Orders"]).status.code(), Some(1), "nothing left to undo");
    let rebuilt = run(dir.path(), &["run", "Orders"]);
    assert!(
        text(&rebuilt.stdout).contains("Orders: succeeded — 3 objects, 8 rows"),
        "{}",
        text(&rebuilt.stdout)
    );
}

/// A folder dataflow `People` over JSONL files, written with `sink` settings.
fn people(sink: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    std::fs::write(
        dir.path().join("connector.toml"),
        format!("[dataflows.People]\nsource = {{ type = \"local\", path = \"data\" }}\nformat = {{ plugin = \"jsonl\" }}\nsink = {{ {sink} }}\n"),
    )
    .unwrap();
    dir
}

/// Writes a file whose mtime is `minutes_ago`, so files sort in the order a test writes them.
fn put(dir: &Path, name: &str, text: &str, minutes_ago: u64) {
    let path = dir.join("data").join(name);
    std::fs::write(&path, text).unwrap();
    let at = SystemTime::now() - Duration::from_secs(minutes_ago * 60);
    std::fs::File::options().write(true).open(&path).unwrap().set_modified(at).unwrap();
}

fn query(database: &Path, sql: &str) -> Vec<String> {
    let connection = Connection::open(database).unwrap();
    let mut statement = connection.prepare(sql).unwrap();
    statement.query_map([], |row| row.get::<_, String>(0)).unwrap().map(Result::unwrap).collect()
}

#[test]
fn merge_upserts_on_the_key_a_later_row_wins_and_rollback_restores_the_table_exactly() {
    let dir = people("mode = \"merge\", key = [\"id\"]");
    let tables = dir.path().join("sluice.db");
    put(
        dir.path(),
        "1.jsonl",
        "{\"id\": 1, \"name\": \"Ann\"}\n{\"id\": 2, \"name\": \"Bo\", \"score\": 2.5}\n",
        30,
    );
    assert_eq!(run(dir.path(), &["run"]).status.code(), Some(0));
    let before = dump(&tables, "people");

    put(
        dir.path(),
        "2.jsonl",
        "{\"id\": 2, \"name\": \"Bob\"}\n{\"id\": 3, \"name\": \"Cy\"}\n{\"id\": 3, \"name\": \"Cyd\", \"vip\": true}\n",
        20,
    );
    let merged = run(dir.path(), &["run"]);
    assert_eq!(merged.status.code(), Some(0), "{}", text(&merged.stderr));
    let sql = "SELECT id || ':' || name FROM people ORDER BY id";
    assert_eq!(query(&tables, sql), ["1:Ann", "2:Bob", "3:Cyd"]);

    assert_eq!(run(dir.path(), &["rollback", "People"]).status.code(), Some(0));
    assert_eq!(dump(&tables, "people"), before, "rows, rowids, values and columns as before the merge");
    let again = run(dir.path(), &["run"]);
    assert!(text(&again.stdout).contains("1 objects, 3 rows"), "{}", text(&again.stdout));
    assert_eq!(query(&tables, sql), ["1:Ann", "2:Bob", "3:Cyd"]);

    // The key cannot change under rows merged on it.
    let config = dir.path().join("connector.toml");
    let changed = std::fs::read_to_string(&config).unwrap().replace("key = [\"id\"]", "key = [\"name\"]");
    std::fs::write(&config, changed).unwrap();
    let refused = run(dir.path(), &["run"]);
    assert_eq!(refused.status.code(), Some(1));
    let stderr = text(&refused.stderr);
    assert!(
        stderr.contains("merged its rows on [id] and is now set to merge on [name]")
            && stderr.contains("sluice remove People"),
        "{stderr}"
    );
}

#[test]
fn replace_makes_the_table_exactly_what_the_run_loaded_and_rollback_brings_the_old_rows_back() {
    let dir = people("mode = \"replace\"");
    let tables = dir.path().join("sluice.db");
    put(dir.path(), "monday.jsonl", "{\"id\": 1}\n{\"id\": 2}\n", 30);
    run(dir.path(), &["run"]);
    let monday = dump(&tables, "people");

    put(dir.path(), "tuesday.jsonl", "{\"id\": 7, \"note\": \"new column\"}\n", 20);
    put(dir.path(), "tuesday-2.jsonl", "{\"id\": 8}\n", 10);
    let tuesday = run(dir.path(), &["run"]);
    assert!(text(&tuesday.stdout).contains("2 objects, 2 rows"), "{}", text(&tuesday.stdout));
    assert_eq!(query(&tables, "SELECT id || '' FROM people ORDER BY id"), ["7", "8"]);

    let nothing_new = run(dir.path(), &["run"]);
    assert!(text(&nothing_new.stdout).contains("0 objects"), "{}", text(&nothing_new.stdout));
    assert_eq!(
        query(&tables, "SELECT id || '' FROM people ORDER BY id"),
        ["7", "8"],
        "a run that loads nothing keeps the table"
    );

    assert_eq!(run(dir.path(), &["rollback", "People"]).status.code(), Some(0));
    assert_eq!(dump(&tables, "people"), monday);
}

#[test]
fn only_the_configured_number_of_versions_is_kept() {
    let dir = people("versions = 2");
    for (n, minutes_ago) in [(1, 40), (2, 30), (3, 20)] {
        put(dir.path(), &format!("{n}.jsonl"), &format!("{{\"id\": {n}}}\n"), minutes_ago);
        run(dir.path(), &["run"]);
    }
    let tables = dir.path().join("sluice.db");
    assert_eq!(count(&tables, "SELECT count(*) FROM _sluice_versions WHERE dataflow = 'People'"), 2);
    assert_eq!(run(dir.path(), &["rollback", "People"]).status.code(), Some(0));
    assert_eq!(run(dir.path(), &["rollback", "People"]).status.code(), Some(0));
    let third = run(dir.path(), &["rollback", "People"]);
    assert_eq!(third.status.code(), Some(1), "the first run's version was let go");
    assert_eq!(query(&tables, "SELECT id || '' FROM people"), ["1"]);
}

#[test]
fn tables_carry_a_purpose_and_a_kind_from_the_config() {
    let dir = example();
    let before = text(&run(dir.path(), &["dataflows", "--tables"]).stdout);
    assert!(before.contains("Customers  customers  customer-360  data  —"), "{before}");
    run(dir.path(), &["run"]);
    let listed: serde_json::Value =
        serde_json::from_slice(&run(dir.path(), &["dataflows", "--tables", "--json"]).stdout).unwrap();
    let customers = &listed[0];
    assert_eq!(customers["purpose"], "customer-360");
    assert_eq!((customers["kind"].as_str(), customers["rows"].as_u64()), (Some("data"), Some(3)));
    assert_eq!(listed[1]["purpose"], "all");

    let bad = config_error(&format!(
        "[dataflows.Audit]\n{LOCAL}format = {{ plugin = \"csv\" }}\nsink = {{ purpose = \"marketing\", kind = \"metadata\" }}\n"
    ));
    assert!(bad.contains("line 4") && bad.contains("marketing") && bad.contains("customer-360"), "{bad}");
}
