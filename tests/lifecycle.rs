//! A dataflow's life as users run it from the terminal — runs, incremental runs, a killed run, write
//! modes, rollback, remove, listing and history — each test run on SQLite (the embedded default), on the
//! machine's PostgreSQL and, where it applies, on Delta tables in a folder and on an S3 server
//! (`sqlite::NAME`, `postgres::NAME`, `delta::NAME`, `delta_s3::NAME`).

mod support;

use sluice_testkit::s3::{ACCESS_KEY, S3Server};
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant, SystemTime};
use support::backend::{Backend, DATABASES};

on_every_backend!(
    everywhere: [
        the_example_loads_then_imports_nothing_new_then_a_touched_file_again,
        a_partial_run_exits_1_naming_the_object_that_failed_and_the_next_run_does_not_retry_it,
        tables_take_their_columns_and_types_from_the_records_and_grow_new_columns,
        a_type_conflict_widens_the_column_to_text_or_fails_the_object_as_configured,
        a_second_run_of_a_dataflow_is_refused_while_the_first_runs_and_history_tells_both,
        the_dataflow_list_and_history_show_status_tables_times_and_the_error_of_a_failed_run,
        remove_deletes_the_tables_ledger_cursor_and_history_and_the_next_run_starts_from_scratch,
        a_ledger_that_says_more_than_the_sink_holds_is_squared_and_the_objects_imported_again,
        rollback_after_append_restores_the_earlier_rows_and_columns_exactly_and_twice_goes_back_two_runs,
        merge_upserts_on_the_key_a_later_row_wins_and_rollback_restores_the_table_exactly,
        replace_makes_the_table_exactly_what_the_run_loaded_and_rollback_brings_the_old_rows_back,
        tables_carry_a_purpose_and_a_kind_from_the_config,
        objects_rolled_back_with_skip_are_not_imported_again_until_they_change,
        runs_in_one_process_each_roll_back_exactly_their_own_rows,
        a_failed_object_is_imported_again_once_its_options_are_fixed_and_retry_takes_one_on_demand,
        a_renamed_table_keeps_its_rows_and_history,
        a_run_killed_mid_way_is_finished_by_the_next_with_every_row_once,
        rejects_lists_the_rejected_rows_of_each_run_with_object_line_reason_and_raw_text,
    ],
    // The databases' own: a table's column limit, and the `_sluice_versions` bookkeeping (Delta's versions
    // are its log's, kept by `optimize`: tests/delta.rs).
    databases: [
        only_the_configured_number_of_versions_is_kept,
        a_file_with_more_columns_than_the_database_holds_fails_naming_the_limit_and_is_not_retried,
        rejects_replayed_after_the_mapping_is_fixed_load_with_their_lineage_and_a_rollback_undoes_it,
    ],
);

fn run(backend: &Backend, dir: &Path, args: &[&str]) -> Output {
    support::output(backend.command(dir).args(args))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn stdout(output: &Output) -> String {
    text(&output.stdout)
}

/// A folder of its own with a `connector.toml` of `dataflows` (and the backend's databases).
fn configured(dataflows: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    std::fs::write(dir.path().join("connector.toml"), format!("{DATABASES}{dataflows}")).unwrap();
    dir
}

/// A folder dataflow `People` over JSONL files, written with `sink` settings.
fn people(sink: &str) -> tempfile::TempDir {
    configured(&format!(
        "[dataflows.People]\nsource = {{ type = \"local\", path = \"data\" }}\nformat = {{ plugin = \"jsonl\" }}\nsink = {{ {sink} }}\n"
    ))
}

/// Writes a file whose mtime is `minutes_ago`, so files sort in the order a test writes them.
fn put(dir: &Path, name: &str, text: &str, minutes_ago: u64) {
    let path = dir.join("data").join(name);
    std::fs::write(&path, text).unwrap();
    let at = SystemTime::now() - Duration::from_secs(minutes_ago * 60);
    std::fs::File::options().write(true).open(&path).unwrap().set_modified(at).unwrap();
}

fn the_example_loads_then_imports_nothing_new_then_a_touched_file_again(b: &Backend) {
    let dir = support::example();
    let first = run(b, dir.path(), &["run"]);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first.stderr));
    let summary = stdout(&first);
    assert!(summary.contains("Orders: succeeded — 2 objects, 7 rows, 1 rejected"), "{summary}");
    assert!(summary.contains("Customers: succeeded — 1 objects, 3 rows, 0 rejected"), "{summary}");
    assert!(summary.contains("Products: succeeded — 1 objects, 3 rows, 0 rejected"), "{summary}");
    let count = |sql: &str| b.count(dir.path(), "Orders", sql);
    assert_eq!(count("SELECT count(*) FROM orders"), 7);
    assert_eq!(count("SELECT count(*) FROM orders WHERE _sluice_object LIKE '%.csv.gz'"), 3);
    assert_eq!(count("SELECT count(*) FROM _sluice_rejects WHERE object LIKE 'orders/%' AND line = 5"), 1);

    let second = run(b, dir.path(), &["run"]);
    assert_eq!(second.status.code(), Some(0));
    for name in ["Orders", "Customers", "Products"] {
        let expected = format!("{name}: succeeded — 0 objects, 0 rows");
        assert!(stdout(&second).contains(&expected), "{}", stdout(&second));
    }

    let touched = dir.path().join("examples/data/orders/orders-2026-11.csv");
    let later = SystemTime::now() + Duration::from_secs(5);
    std::fs::File::options().write(true).open(&touched).unwrap().set_modified(later).unwrap();
    let third = run(b, dir.path(), &["run", "Orders"]);
    assert!(
        stdout(&third).contains("Orders: succeeded — 1 objects, 4 rows, 1 rejected"),
        "{}",
        stdout(&third)
    );
    assert_eq!(count("SELECT count(*) FROM orders"), 11);
}

/// An S3 server holding `objects` CSV objects of `rows` rows each, and a configuration that reads them
/// with the secret key taken from `TEST_S3_SECRET`.
fn many_objects(b: &Backend, objects: u32, rows: u32) -> (S3Server, tempfile::TempDir) {
    let s3 = S3Server::start();
    s3.create_bucket("exports");
    for object in 0..objects {
        let mut body = String::from("id,object,note\n");
        for row in 0..rows {
            body.push_str(&format!("{},{object},\"row {row} of object {object}\"\n", object * rows + row));
        }
        let an_hour_ago = SystemTime::now() - Duration::from_secs(60);
        s3.put("exports", &format!("orders/{object:04}.csv"), body.as_bytes(), an_hour_ago);
    }
    let dir = configured(&format!(
        "[dataflows.Orders]\nsource = {{ type = \"s3\", bucket = \"exports\", endpoint = \"{}\", access_key_id = \"{ACCESS_KEY}\", secret_access_key = \"${{TEST_S3_SECRET}}\" }}\nformat = {{ plugin = \"csv\" }}\n{}",
        s3.endpoint(),
        b.prompt_commits()
    ));
    (s3, dir)
}

/// Objects the sink has committed so far (0 before the first).
fn committed_objects(b: &Backend, dir: &Path) -> i64 {
    b.try_strings(dir, "Orders", "SELECT count(*) FROM _sluice_objects")
        .ok()
        .and_then(|rows| rows.first().and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

/// Starts `sluice run` and waits until it has committed `objects` objects.
fn start_run(b: &Backend, dir: &Path, objects: i64) -> std::process::Child {
    let mut child =
        b.command(dir).args(["run"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while committed_objects(b, dir) < objects {
        assert!(Instant::now() < deadline, "the run committed nothing in time");
        if child.try_wait().unwrap().is_some() {
            let output = support::output_within(child, support::HUNG);
            panic!("the run ended before the test could act: {}", text(&output.stderr));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    child
}

/// Runs' leases in `dir`'s configuration last `timeout` unrenewed.
fn lease_timeout(dir: &Path, timeout: &str) {
    let path = dir.join("connector.toml");
    let config = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        config.replacen("[state]\n", &format!("[state]\nlease_timeout = \"{timeout}\"\n"), 1),
    )
    .unwrap();
}

/// The runs of `Orders`, newest first, as `sluice history --json` lists them.
fn history(b: &Backend, dir: &Path) -> Vec<serde_json::Value> {
    let listed = run(b, dir, &["history", "Orders", "--json"]);
    assert_eq!(listed.status.code(), Some(0), "{}", text(&listed.stderr));
    serde_json::from_slice::<serde_json::Value>(&listed.stdout).unwrap().as_array().unwrap().clone()
}

fn a_run_killed_mid_way_is_finished_by_the_next_with_every_row_once(b: &Backend) {
    const OBJECTS: u32 = 200;
    const ROWS: u32 = 2_000;
    let (_s3, dir) = many_objects(b, OBJECTS, ROWS);
    lease_timeout(dir.path(), "2s");
    let mut child = start_run(b, dir.path(), 5);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // What the process committed: on PostgreSQL, a commit it sent as it died lands until its session ends.
    b.await_killed_sessions();
    let at_kill = committed_objects(b, dir.path());
    assert!(at_kill < OBJECTS as i64, "killed in the middle ({at_kill} of {OBJECTS} objects committed)");

    // The dead run shows as interrupted once that is knowable (at once where SQLite's file lock went with
    // the process; when its lease expires on PostgreSQL), with what the ledger has it commit.
    let deadline = Instant::now() + Duration::from_secs(10);
    let killed = loop {
        let runs = history(b, dir.path());
        if runs[0]["status"] == "interrupted" {
            break runs[0].clone();
        }
        assert_eq!(runs[0]["status"], "running", "{runs:?}");
        assert!(Instant::now() < deadline, "still running after its lease expired: {runs:?}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let recorded = b.state_count(dir.path(), "SELECT count(*) FROM objects WHERE status = 'loaded'");
    let ahead = b.recorded_ahead_of_commits();
    assert!(recorded > 0 && recorded <= at_kill + ahead, "{recorded} recorded of {at_kill} committed");
    assert_eq!(killed["objects"], recorded, "{killed}");
    assert_eq!(killed["rows_written"], recorded * ROWS as i64, "{killed}");

    let resumed = run(b, dir.path(), &["run"]);
    assert_eq!(resumed.status.code(), Some(0), "{}", text(&resumed.stderr));
    let total = (OBJECTS * ROWS) as i64;
    let count = |sql: &str| b.count(dir.path(), "Orders", sql);
    assert_eq!(count("SELECT count(*) FROM orders"), total);
    assert_eq!(count("SELECT count(DISTINCT id) FROM orders"), total);
    assert_eq!(count("SELECT count(DISTINCT _sluice_object || ':' || _sluice_line) FROM orders"), total);
    assert_eq!(b.state_count(dir.path(), "SELECT count(*) FROM runs WHERE status = 'interrupted'"), 1);
    assert_eq!(
        b.state_count(dir.path(), "SELECT count(*) FROM objects WHERE status = 'loaded'"),
        OBJECTS as i64
    );
    // An object the sink committed but the ledger had not recorded when the process died is counted
    // with the killed run by the run that squares the two.
    let killed = history(b, dir.path()).into_iter().find(|r| r["run"] == killed["run"]).unwrap();
    assert_eq!(killed["status"], "interrupted");
    assert_eq!(killed["objects"], at_kill, "{killed}");

    // The ledger lost (a kill between the sink's commit and the ledger's): the sink's markers restore it.
    b.state_execute(dir.path(), "DELETE FROM objects");
    let again = run(b, dir.path(), &["run"]);
    assert!(stdout(&again).contains("Orders: succeeded — 0 objects"), "{}", stdout(&again));
    assert_eq!(count("SELECT count(*) FROM orders"), total);
}

fn a_partial_run_exits_1_naming_the_object_that_failed_and_the_next_run_does_not_retry_it(b: &Backend) {
    let dir = configured(
        "[dataflows.Items]\nsource = { type = \"local\", path = \"data\" }\nformat = { plugin = \"json\" }\n",
    );
    std::fs::write(dir.path().join("data/good.json"), "[{\"id\": 1}, {\"id\": 2}]").unwrap();
    std::fs::write(dir.path().join("data/bad.json"), "[{\"id\": 3},\n{\"id\": }]").unwrap();
    let output = run(b, dir.path(), &["run"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stdout(&output).contains("Items: partial — 2 objects, 2 rows"), "{}", stdout(&output));
    let stderr = text(&output.stderr);
    for part in ["dataflow `Items`, object `bad.json`", "plugin `json`", "line 2", "1 of 2 objects failed"] {
        assert!(stderr.contains(part), "`{part}` missing from: {stderr}");
    }
    assert_eq!(b.count(dir.path(), "Items", "SELECT count(*) FROM items"), 2);
    let again = run(b, dir.path(), &["run"]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again.stderr));
    assert!(stdout(&again).contains("Items: succeeded — 0 objects"), "{}", stdout(&again));
}

fn tables_take_their_columns_and_types_from_the_records_and_grow_new_columns(b: &Backend) {
    let dir = people("");
    put(dir.path(), "1.jsonl", "{\"id\": 1, \"name\": \"Ann\", \"score\": 1.5}\n", 60);
    assert_eq!(run(b, dir.path(), &["run"]).status.code(), Some(0));
    put(dir.path(), "2.jsonl", "{\"id\": 2, \"name\": \"Bo\", \"vip\": true, \"tags\": [\"a\"]}\n", 30);
    let output = run(b, dir.path(), &["run"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));

    let columns = b.dump(dir.path(), "People", "people");
    let columns = columns.lines().next().unwrap();
    let expected = match b {
        Backend::Postgres(_) => {
            "[\"_sluice_row bigint\", \"_sluice_object text\", \"_sluice_line bigint\", \"_sluice_run bigint\", \"id bigint\", \"name text\", \"score double precision\", \"vip boolean\", \"tags jsonb\"]"
        }
        Backend::Sqlite => {
            "[\"_sluice_object TEXT\", \"_sluice_line INTEGER\", \"_sluice_run INTEGER\", \"id INTEGER\", \"name TEXT\", \"score REAL\", \"vip INTEGER\", \"tags TEXT\"]"
        }
        // Nested JSON is its text in a STRING column.
        Backend::Delta | Backend::DeltaS3(_) => {
            "[\"_sluice_object string\", \"_sluice_line long\", \"_sluice_run long\", \"id long\", \"name string\", \"score double\", \"vip boolean\", \"tags string\"]"
        }
    };
    assert_eq!(columns, expected);
    let rows = b.strings(
        dir.path(),
        "People",
        "SELECT id || '|' || coalesce(CAST(score AS TEXT), '') || '|' || coalesce(CAST(vip AS TEXT), '') || '|' || coalesce(CAST(tags AS TEXT), '') FROM people ORDER BY id",
    );
    let vip = if b.is_postgres() { "true" } else { "1" };
    assert_eq!(rows, ["1|1.5||".to_string(), format!("2||{vip}|[\"a\"]")]);
}

fn a_type_conflict_widens_the_column_to_text_or_fails_the_object_as_configured(b: &Backend) {
    let dir = people("");
    put(dir.path(), "1.jsonl", "{\"id\": 1, \"code\": 7}\n{\"id\": 2, \"code\": 8}\n", 60);
    assert_eq!(run(b, dir.path(), &["run"]).status.code(), Some(0));
    let before = b.dump(dir.path(), "People", "people");
    put(dir.path(), "2.jsonl", "{\"id\": 3, \"code\": \"A-17\"}\n", 30);
    let widened = run(b, dir.path(), &["run"]);
    assert_eq!(widened.status.code(), Some(0), "{}", text(&widened.stderr));
    assert!(text(&widened.stderr).contains("now is TEXT"), "{}", text(&widened.stderr));
    let codes = b.strings(dir.path(), "People", "SELECT code FROM people ORDER BY id");
    assert_eq!(codes, ["7", "8", "A-17"], "every value kept as written");
    // A rollback takes the column back to its type with the rows.
    assert_eq!(run(b, dir.path(), &["rollback", "People"]).status.code(), Some(0));
    assert_eq!(b.dump(dir.path(), "People", "people"), before);

    let config = dir.path().join("connector.toml");
    let strict = std::fs::read_to_string(&config)
        .unwrap()
        .replace("sink = {  }", "sink = { on_type_conflict = \"fail\" }");
    std::fs::write(&config, strict).unwrap();
    let failed = run(b, dir.path(), &["run"]);
    assert_eq!(failed.status.code(), Some(1), "{}", stdout(&failed));
    let stderr = text(&failed.stderr);
    for part in ["object `2.jsonl`", "line 1", "column `code`", "the text `A-17`", "on_type_conflict"] {
        assert!(stderr.contains(part), "`{part}` missing from: {stderr}");
    }
    assert_eq!(b.dump(dir.path(), "People", "people"), before, "nothing of the object was loaded");
}

fn a_second_run_of_a_dataflow_is_refused_while_the_first_runs_and_history_tells_both(b: &Backend) {
    const OBJECTS: u32 = 40;
    const ROWS: u32 = 500;
    let (s3, dir) = many_objects(b, OBJECTS, ROWS);
    // A slow store: the first run takes seconds, whatever the machine, so the others meet it running.
    s3.set_get_delay(Duration::from_millis(100));
    let first = start_run(b, dir.path(), 1);

    let listing = run(b, dir.path(), &["dataflows", "--json"]);
    let listed: serde_json::Value = serde_json::from_slice(&listing.stdout).unwrap();
    assert_eq!(listed[0]["status"], "running", "{listed}");

    for refused in [&["run", "Orders"][..], &["rollback", "Orders"], &["remove", "Orders", "--yes"]] {
        let output = run(b, dir.path(), refused);
        assert_eq!(output.status.code(), Some(75), "busy (EX_TEMPFAIL), not failed: {refused:?}");
        let stderr = text(&output.stderr);
        assert!(
            stderr.contains("dataflow `Orders` is being run by another process (") && stderr.contains("pid"),
            "{refused:?}: {stderr}"
        );
    }

    let first = support::output_within(first, support::HUNG);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first.stderr));
    let count = |sql: &str| b.count(dir.path(), "Orders", sql);
    assert_eq!(count("SELECT count(*) FROM orders"), (OBJECTS * ROWS) as i64, "never both wrote");
    assert_eq!(count("SELECT count(DISTINCT id) FROM orders"), (OBJECTS * ROWS) as i64);

    let history: serde_json::Value =
        serde_json::from_slice(&run(b, dir.path(), &["history", "Orders", "--json"]).stdout).unwrap();
    assert_eq!(history.as_array().unwrap().len(), 1, "the refused run left no record: {history}");
    assert_eq!(history[0]["status"], "succeeded");
    assert_eq!(history[0]["objects"], OBJECTS);
    assert_eq!(history[0]["rows_written"], OBJECTS * ROWS);
}

fn the_dataflow_list_and_history_show_status_tables_times_and_the_error_of_a_failed_run(b: &Backend) {
    let dir = configured(
        "[dataflows.Items]\nsource = { type = \"local\", path = \"data\" }\nformat = { plugin = \"json\" }\n\n\
         [dataflows.Later]\nsource = { type = \"local\", path = \"data\" }\nformat = { plugin = \"json\" }\n",
    );
    std::fs::write(dir.path().join("data/good.json"), "[{\"id\": 1}]").unwrap();
    std::fs::write(dir.path().join("data/bad.json"), "[{\"id\": }]").unwrap();
    let kind = format!("local ─► {}", b.sink_kind());
    let before = stdout(&run(b, dir.path(), &["dataflows"]));
    assert!(before.starts_with("NAME"), "{before}");
    assert!(
        before.contains(&format!("Items  {kind}")) && before.contains("never run  0       —"),
        "{before}"
    );
    run(b, dir.path(), &["run", "Items"]);

    let listed: serde_json::Value =
        serde_json::from_slice(&run(b, dir.path(), &["dataflows", "--json"]).stdout).unwrap();
    let items = &listed[0];
    assert_eq!((items["name"].as_str(), items["type"].as_str()), (Some("Items"), Some(kind.as_str())));
    assert_eq!((items["status"].as_str(), items["tables_count"].as_u64()), (Some("partial"), Some(1)));
    assert!(
        items["created"].is_string() && items["updated"].is_string() && items["last_refresh"].is_string()
    );
    assert_eq!(listed[1]["status"], "never run");
    assert!(listed[1]["created"].is_null());

    let history = stdout(&run(b, dir.path(), &["history", "Items"]));
    assert!(history.contains("partial") && history.contains("2 (1 failed)"), "{history}");
    assert!(
        history.contains("object `bad.json`: plugin `json` cannot read `bad.json` at line 1"),
        "{history}"
    );
    assert!(stdout(&run(b, dir.path(), &["history", "Later"])).contains("Later has not run yet"));
    assert_eq!(run(b, dir.path(), &["history", "Nope"]).status.code(), Some(2));
}

fn rejects_lists_the_rejected_rows_of_each_run_with_object_line_reason_and_raw_text(b: &Backend) {
    let dir = configured(
        "[dataflows.People]\nsource = { type = \"local\", path = \"data\" }\nformat = { plugin = \"csv\" }\nsink = { table = \"people\" }\n",
    );
    assert!(stdout(&run(b, dir.path(), &["rejects", "People"])).contains("People rejected no rows"));
    put(dir.path(), "a.csv", "id,name\n1,a\n2,b,extra\n3,\"two\nlines\",x\n", 2);
    run(b, dir.path(), &["run", "People"]);
    put(dir.path(), "b.csv", "id,name\n4\n5,e\n", 1);
    run(b, dir.path(), &["run", "People"]);
    let runs: serde_json::Value =
        serde_json::from_slice(&run(b, dir.path(), &["history", "People", "--json"]).stdout).unwrap();
    let (first, second) = (runs[1]["run"].as_i64().unwrap(), runs[0]["run"].as_i64().unwrap());

    let rejects = |args: &[&str]| -> Vec<serde_json::Value> {
        let output = run(b, dir.path(), &[&["rejects", "People", "--json"], args].concat());
        assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
        serde_json::from_slice(&output.stdout).unwrap()
    };
    let all = rejects(&[]);
    let seen: Vec<_> = all
        .iter()
        .map(|r| (r["run_id"].as_i64().unwrap(), r["object"].as_str().unwrap(), r["line"].as_u64().unwrap()))
        .collect();
    assert_eq!(seen, [(first, "a.csv", 3), (first, "a.csv", 4), (second, "b.csv", 2)]);
    assert_eq!(all[0]["table"], "people");
    assert_eq!(all[0]["reason"], "expected 2 fields, found 3");
    assert_eq!(all[1]["raw"], "3,\"two\nlines\",x", "the raw text whole, its line end kept");
    assert_eq!(all[2]["reason"], "expected 2 fields, found 1");
    assert!(all[0]["etag"].is_string());

    assert_eq!(rejects(&["--run", &second.to_string()]).len(), 1);
    let found_3 = rejects(&["--reason", "FOUND 3"]);
    assert!(found_3.len() == 2 && found_3.iter().all(|r| r["object"] == "a.csv"), "{found_3:?}");
    let none = run(b, dir.path(), &["rejects", "People", "--run", &first.to_string(), "--reason", "found 1"]);
    assert_eq!(
        stdout(&none).trim(),
        format!("People rejected no rows in run {first} for a reason holding `found 1`")
    );

    // The table: a line each, the raw text on one line.
    let table = stdout(&run(b, dir.path(), &["rejects", "People"]));
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("RUN") && lines[0].ends_with("RAW"), "{table}");
    assert_eq!(lines.len(), 4, "{table}");
    assert!(lines[2].contains("a.csv") && lines[2].ends_with("3,\"two\\nlines\",x"), "{table}");
    assert_eq!(run(b, dir.path(), &["rejects", "Nobody"]).status.code(), Some(2));
}

fn remove_deletes_the_tables_ledger_cursor_and_history_and_the_next_run_starts_from_scratch(b: &Backend) {
    let dir = support::example();
    run(b, dir.path(), &["run"]);
    let count = |dataflow: &str, sql: &str| b.count(dir.path(), dataflow, sql);

    let unconfirmed = run(b, dir.path(), &["remove", "Orders"]);
    assert_eq!(unconfirmed.status.code(), Some(2));
    assert!(text(&unconfirmed.stderr).contains("pass --yes to confirm"), "{}", text(&unconfirmed.stderr));
    assert_eq!(count("Orders", "SELECT count(*) FROM orders"), 7, "nothing removed without confirmation");

    let unknown = run(b, dir.path(), &["remove", "Refunds", "--yes"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(text(&unknown.stderr).contains("no dataflow `Refunds`"), "{}", text(&unknown.stderr));

    let removed = run(b, dir.path(), &["remove", "Orders", "--yes"]);
    assert_eq!(removed.status.code(), Some(0), "{}", text(&removed.stderr));
    assert!(stdout(&removed).contains("(7 rows)"), "{}", stdout(&removed));
    assert!(!b.has_table(dir.path(), "Orders", "orders"));
    assert!(
        b.try_strings(
            dir.path(),
            "Orders",
            "SELECT count(*) FROM _sluice_rejects WHERE object LIKE 'orders/%'"
        )
        .map_or(true, |rows| rows == ["0"])
    );
    assert_eq!(count("Customers", "SELECT count(*) FROM customers"), 3, "other dataflows are untouched");
    for table in ["runs", "objects", "cursors"] {
        let sql = format!("SELECT count(*) FROM {table} WHERE dataflow = 'Orders'");
        assert_eq!(b.state_count(dir.path(), &sql), 0, "{table}");
    }
    let listed: serde_json::Value =
        serde_json::from_slice(&run(b, dir.path(), &["dataflows", "--json"]).stdout).unwrap();
    let orders = listed.as_array().unwrap().iter().find(|d| d["name"] == "Orders").unwrap();
    assert_eq!((orders["status"].as_str(), orders["tables_count"].as_u64()), (Some("never run"), Some(0)));

    let again = run(b, dir.path(), &["run", "Orders"]);
    assert!(
        stdout(&again).contains("Orders: succeeded — 2 objects, 7 rows, 1 rejected"),
        "{}",
        stdout(&again)
    );
}

fn a_ledger_that_says_more_than_the_sink_holds_is_squared_and_the_objects_imported_again(b: &Backend) {
    let dir = support::example();
    // An older object, so that the cursor (at the newer one) has moved well past it.
    let older = dir.path().join("examples/data/orders/orders-2026-10.csv.gz");
    let ten_days_ago = SystemTime::now() - Duration::from_secs(10 * 86_400);
    std::fs::File::options().write(true).open(&older).unwrap().set_modified(ten_days_ago).unwrap();
    run(b, dir.path(), &["run", "Orders"]);
    // The tables lost (restored from an old backup, say): the ledger and cursor still say loaded.
    b.lose_tables(dir.path(), &["Orders"]);
    let output = run(b, dir.path(), &["run", "Orders"]);
    assert!(stdout(&output).contains("Orders: succeeded — 2 objects, 7 rows"), "{}", stdout(&output));
    assert_eq!(b.count(dir.path(), "Orders", "SELECT count(*) FROM orders"), 7);
}

fn rollback_after_append_restores_the_earlier_rows_and_columns_exactly_and_twice_goes_back_two_runs(
    b: &Backend,
) {
    let dir = support::example();
    let dump = || b.dump(dir.path(), "Orders", "orders");
    let count = |sql: &str| b.count(dir.path(), "Orders", sql);
    let nothing = run(b, dir.path(), &["rollback", "Orders"]);
    assert_eq!(nothing.status.code(), Some(1));
    assert!(
        text(&nothing.stderr).contains("dataflow `Orders` has no run to roll back"),
        "{}",
        text(&nothing.stderr)
    );

    run(b, dir.path(), &["run", "Orders"]);
    let after_first = dump();
    let rejects_after_first = count("SELECT count(*) FROM _sluice_rejects");
    std::fs::write(
        dir.path().join("examples/data/orders/orders-2026-12.csv"),
        "id,customer,email,amount,currency,created,note,coupon\n2001,Ann,ann@example.com,5.00,usd,2026-12-01T00:00:00Z,,XMAS\n2002,Bo\n",
    )
    .unwrap();
    let second = run(b, dir.path(), &["run", "Orders"]);
    assert!(stdout(&second).contains("1 objects, 1 rows, 1 rejected"), "{}", stdout(&second));
    assert_ne!(dump(), after_first);

    let rolled = run(b, dir.path(), &["rollback", "Orders"]);
    assert_eq!(rolled.status.code(), Some(0), "{}", text(&rolled.stderr));
    assert!(stdout(&rolled).contains("(1 rows removed)"), "{}", stdout(&rolled));
    assert_eq!(dump(), after_first, "rows, values, types and columns as before the run");
    assert_eq!(count("SELECT count(*) FROM _sluice_rejects"), rejects_after_first);
    let history: serde_json::Value =
        serde_json::from_slice(&run(b, dir.path(), &["history", "Orders", "--json"]).stdout).unwrap();
    assert_eq!(history[0]["status"], "rolled back");

    // The rolled-back object is imported again by the next run, once.
    let again = run(b, dir.path(), &["run", "Orders"]);
    assert!(stdout(&again).contains("Orders: succeeded — 1 objects, 1 rows"), "{}", stdout(&again));
    assert_eq!(count("SELECT count(*) FROM orders WHERE coupon = 'XMAS'"), 1);

    // Twice: back past the re-import, then past the first run (which created the table).
    assert_eq!(run(b, dir.path(), &["rollback", "Orders"]).status.code(), Some(0));
    assert_eq!(dump(), after_first);
    assert_eq!(run(b, dir.path(), &["rollback", "Orders"]).status.code(), Some(0));
    assert!(!b.has_table(dir.path(), "Orders", "orders"));
    assert_eq!(run(b, dir.path(), &["rollback", "Orders"]).status.code(), Some(1), "nothing left to undo");
    let rebuilt = run(b, dir.path(), &["run", "Orders"]);
    assert!(stdout(&rebuilt).contains("Orders: succeeded — 3 objects, 8 rows"), "{}", stdout(&rebuilt));
}

fn merge_upserts_on_the_key_a_later_row_wins_and_rollback_restores_the_table_exactly(b: &Backend) {
    let dir = people("mode = \"merge\", key = [\"id\"]");
    let dump = || b.dump(dir.path(), "People", "people");
    put(
        dir.path(),
        "1.jsonl",
        "{\"id\": 1, \"name\": \"Ann\"}\n{\"id\": 2, \"name\": \"Bo\", \"score\": 2.5}\n",
        30,
    );
    assert_eq!(run(b, dir.path(), &["run"]).status.code(), Some(0));
    let before = dump();

    put(
        dir.path(),
        "2.jsonl",
        "{\"id\": 2, \"name\": \"Bob\"}\n{\"id\": 3, \"name\": \"Cy\"}\n{\"id\": 3, \"name\": \"Cyd\", \"vip\": true}\n{\"id\": null, \"name\": \"Nobody\"}\n",
        20,
    );
    let merged = run(b, dir.path(), &["run"]);
    assert_eq!(merged.status.code(), Some(0), "{}", text(&merged.stderr));
    assert!(stdout(&merged).contains("1 objects, 3 rows, 1 rejected"), "{}", stdout(&merged));
    let merged_rows = || b.strings(dir.path(), "People", "SELECT id || ':' || name FROM people ORDER BY id");
    assert_eq!(merged_rows(), ["1:Ann", "2:Bob", "3:Cyd"]);
    let reason = b.strings(dir.path(), "People", "SELECT reason FROM _sluice_rejects");
    assert_eq!(reason, ["the merge key column `id` is empty"]);

    assert_eq!(run(b, dir.path(), &["rollback", "People"]).status.code(), Some(0));
    assert_eq!(dump(), before, "rows, identities, values and columns as before the merge");
    let again = run(b, dir.path(), &["run"]);
    assert!(stdout(&again).contains("1 objects, 3 rows"), "{}", stdout(&again));
    assert_eq!(merged_rows(), ["1:Ann", "2:Bob", "3:Cyd"]);

    // The key cannot change under rows merged on it.
    let config = dir.path().join("connector.toml");
    let changed = std::fs::read_to_string(&config).unwrap().replace("key = [\"id\"]", "key = [\"name\"]");
    std::fs::write(&config, changed).unwrap();
    let refused = run(b, dir.path(), &["run"]);
    assert_eq!(refused.status.code(), Some(1));
    let stderr = text(&refused.stderr);
    assert!(
        stderr.contains("merged its rows on [id] and is now set to merge on [name]")
            && stderr.contains("sluice remove People"),
        "{stderr}"
    );
}

fn replace_makes_the_table_exactly_what_the_run_loaded_and_rollback_brings_the_old_rows_back(b: &Backend) {
    let dir = people("mode = \"replace\"");
    let ids = || b.strings(dir.path(), "People", "SELECT id || '' FROM people ORDER BY id");
    put(dir.path(), "monday.jsonl", "{\"id\": 1}\n{\"id\": 2}\n", 30);
    run(b, dir.path(), &["run"]);
    let monday = b.dump(dir.path(), "People", "people");

    put(dir.path(), "tuesday.jsonl", "{\"id\": 7, \"note\": \"new column\"}\n", 20);
    put(dir.path(), "tuesday-2.jsonl", "{\"id\": 8}\n", 10);
    let tuesday = run(b, dir.path(), &["run"]);
    assert!(stdout(&tuesday).contains("2 objects, 2 rows"), "{}", stdout(&tuesday));
    assert_eq!(ids(), ["7", "8"]);

    let nothing_new = run(b, dir.path(), &["run"]);
    assert!(stdout(&nothing_new).contains("0 objects"), "{}", stdout(&nothing_new));
    assert_eq!(ids(), ["7", "8"], "a run that loads nothing keeps the table");

    assert_eq!(run(b, dir.path(), &["rollback", "People"]).status.code(), Some(0));
    assert_eq!(b.dump(dir.path(), "People", "people"), monday);
}

fn only_the_configured_number_of_versions_is_kept(b: &Backend) {
    let dir = people("versions = 2");
    for (n, minutes_ago) in [(1, 40), (2, 30), (3, 20)] {
        put(dir.path(), &format!("{n}.jsonl"), &format!("{{\"id\": {n}}}\n"), minutes_ago);
        run(b, dir.path(), &["run"]);
    }
    assert_eq!(b.count(dir.path(), "People", "SELECT count(*) FROM _sluice_versions"), 2);
    assert_eq!(run(b, dir.path(), &["rollback", "People"]).status.code(), Some(0));
    assert_eq!(run(b, dir.path(), &["rollback", "People"]).status.code(), Some(0));
    let third = run(b, dir.path(), &["rollback", "People"]);
    assert_eq!(third.status.code(), Some(1), "the first run's version was let go");
    assert_eq!(b.strings(dir.path(), "People", "SELECT id || '' FROM people"), ["1"]);
}

fn tables_carry_a_purpose_and_a_kind_from_the_config(b: &Backend) {
    let dir = support::example();
    let before = stdout(&run(b, dir.path(), &["dataflows", "--tables"]));
    assert!(before.contains("Customers  customers  customer-360  data  —"), "{before}");
    run(b, dir.path(), &["run"]);
    let listed: serde_json::Value =
        serde_json::from_slice(&run(b, dir.path(), &["dataflows", "--tables", "--json"]).stdout).unwrap();
    let customers = &listed[0];
    assert_eq!(customers["purpose"], "customer-360");
    assert_eq!((customers["kind"].as_str(), customers["rows"].as_u64()), (Some("data"), Some(3)));
    assert_eq!(listed[1]["purpose"], "all");
}

fn a_renamed_table_keeps_its_rows_and_history(b: &Backend) {
    let dir = people("table = \"people\"");
    put(dir.path(), "1.jsonl", "{\"id\": 1}\n", 30);
    run(b, dir.path(), &["run"]);
    let config = dir.path().join("connector.toml");
    let renamed =
        std::fs::read_to_string(&config).unwrap().replace("table = \"people\"", "table = \"persons\"");
    std::fs::write(&config, renamed).unwrap();
    put(dir.path(), "2.jsonl", "{\"id\": 2}\n", 20);
    let second = run(b, dir.path(), &["run"]);
    assert!(stdout(&second).contains("People: succeeded — 1 objects, 1 rows"), "{}", stdout(&second));
    assert!(!b.has_table(dir.path(), "People", "people"));
    assert_eq!(b.strings(dir.path(), "People", "SELECT id || '' FROM persons ORDER BY id"), ["1", "2"]);
    assert_eq!(run(b, dir.path(), &["rollback", "People"]).status.code(), Some(0));
    assert_eq!(b.strings(dir.path(), "People", "SELECT id || '' FROM persons"), ["1"]);
}

#[test]
fn postgres_going_away_mid_run_fails_the_run_cleanly_and_the_next_resumes_with_every_row_once() {
    const OBJECTS: u32 = 40;
    const ROWS: u32 = 500;
    let b = Backend::postgres();
    let (s3, dir) = many_objects(&b, OBJECTS, ROWS);
    s3.set_get_delay(Duration::from_millis(100));
    let child = start_run(&b, dir.path(), 3);
    // A restart or failover of the server: every session Sluice holds is ended.
    assert!(b.terminate_sessions() > 0);
    let cut = support::output_within(child, support::HUNG);
    assert_eq!(cut.status.code(), Some(1), "{}", stdout(&cut));
    let stderr = text(&cut.stderr);
    assert!(stderr.contains("dataflow `Orders`"), "{stderr}");
    assert!(stderr.contains("terminating connection") || stderr.contains("closed"), "{stderr}");
    let committed = committed_objects(&b, dir.path());
    assert!(committed < OBJECTS as i64, "cut in the middle ({committed} of {OBJECTS} objects committed)");
    // The summary of what the run did before the cut, and the run recorded with the server's reason on a
    // new connection.
    assert!(stdout(&cut).starts_with("Orders: failed — "), "{}", stdout(&cut));
    let runs = history(&b, dir.path());
    assert_eq!(runs[0]["status"], "failed", "{runs:?}");
    let error = runs[0]["error"].as_str().unwrap();
    assert!(error.contains("terminating connection") || error.contains("closed"), "{error}");
    assert!(!stdout(&cut).contains(" 0 objects") || committed == 0, "{}", stdout(&cut));

    s3.set_get_delay(Duration::ZERO);
    let resumed = run(&b, dir.path(), &["run"]);
    assert_eq!(resumed.status.code(), Some(0), "{}", text(&resumed.stderr));
    let loaded_now = format!("Orders: succeeded — {} objects", OBJECTS as i64 - committed);
    assert!(stdout(&resumed).contains(&loaded_now), "only what was not committed: {}", stdout(&resumed));
    let total = (OBJECTS * ROWS) as i64;
    assert_eq!(b.count(dir.path(), "Orders", "SELECT count(*) FROM orders"), total, "nothing lost");
    assert_eq!(
        b.count(dir.path(), "Orders", "SELECT count(DISTINCT id) FROM orders"),
        total,
        "nothing twice"
    );
    let statuses = b.state_strings(dir.path(), "SELECT status FROM runs ORDER BY id");
    assert_eq!(statuses, ["failed", "succeeded"], "the cut run is on record");
}

/// Sends `signal` to `child`.
fn signal(child: &std::process::Child, signal: libc::c_int) {
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, signal) }, 0);
}

#[test]
fn postgres_a_run_keeps_its_lease_when_its_session_ends_and_once_it_is_taken_over_commits_nothing_more() {
    const OBJECTS: u32 = 40;
    const ROWS: u32 = 500;
    let b = Backend::postgres();
    let (s3, dir) = many_objects(&b, OBJECTS, ROWS);
    lease_timeout(dir.path(), "2s");
    // A slow store: the first run takes at least ten seconds, whatever the machine.
    s3.set_get_delay(Duration::from_secs(1));
    let first = start_run(&b, dir.path(), 3);

    // The lease's own session ended (a pooler's idle timeout, an operator): the run renews on a new one,
    // and a second run is still refused after the lease would have expired.
    assert_eq!(b.terminate_sessions_named("sluice lease Orders%"), 1);
    std::thread::sleep(Duration::from_secs(3));
    let refused = run(&b, dir.path(), &["run", "Orders"]);
    assert_eq!(refused.status.code(), Some(75), "{}", text(&refused.stderr));
    assert!(text(&refused.stderr).contains("its lease expires in"), "{}", text(&refused.stderr));

    // Frozen (a stopped VM, a long GC pause), the first run stops renewing; its lease expires and a second
    // run takes it over, and loads everything the first had not committed.
    signal(&first, libc::SIGSTOP);
    std::thread::sleep(Duration::from_secs(3));
    // The server ends its sessions meanwhile (as it does one idle inside a transaction): woken, the run
    // fails on them, and says that its lease was taken over, the cause.
    assert!(b.terminate_sessions() > 0);
    s3.set_get_delay(Duration::ZERO);
    let second = run(&b, dir.path(), &["run", "Orders"]);
    assert_eq!(second.status.code(), Some(0), "{}", text(&second.stderr));
    let taken_over = committed_objects(&b, dir.path());
    assert_eq!(taken_over, OBJECTS as i64);

    // Woken, the first run finds its sessions ended and its lease gone: its object in flight is not
    // committed, its ledger writes fail, and it says that its lease was taken over.
    signal(&first, libc::SIGCONT);
    let first = support::output_within(first, support::HUNG);
    assert_eq!(first.status.code(), Some(1), "{}", stdout(&first));
    let stderr = text(&first.stderr);
    assert!(stderr.contains("taken over by another run"), "{stderr}");
    assert_eq!(committed_objects(&b, dir.path()), taken_over, "nothing more committed");
    let total = (OBJECTS * ROWS) as i64;
    assert_eq!(b.count(dir.path(), "Orders", "SELECT count(*) FROM orders"), total);
    assert_eq!(b.count(dir.path(), "Orders", "SELECT count(DISTINCT id) FROM orders"), total);
    assert_eq!(
        b.state_count(dir.path(), "SELECT count(*) FROM objects WHERE status = 'loaded'"),
        OBJECTS as i64,
        "the old run set nothing back to pending"
    );
    let statuses = b.state_strings(dir.path(), "SELECT status FROM runs ORDER BY id");
    assert_eq!(statuses, ["failed", "succeeded"]);
}

#[test]
fn postgres_loads_objects_side_by_side_even_when_each_brings_a_new_column() {
    const OBJECTS: usize = 12;
    let b = Backend::postgres();
    let dir = people("parallelism = 4");
    for n in 0..OBJECTS {
        let rows: String =
            (0..200).map(|i| format!("{{\"id\": {}, \"extra{n}\": {i}}}\n", n * 1000 + i)).collect();
        put(dir.path(), &format!("{n:02}.jsonl"), &rows, 60 - n as u64);
    }
    let output = run(&b, dir.path(), &["run"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(
        stdout(&output).contains(&format!("People: succeeded — {OBJECTS} objects, 2400 rows")),
        "{}",
        stdout(&output)
    );
    let count = |sql: &str| b.count(dir.path(), "People", sql);
    assert_eq!(count("SELECT count(DISTINCT id) FROM people"), 2400);
    let columns = "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'people' AND table_name = 'people' AND column_name LIKE 'extra%'";
    assert_eq!(count(columns), OBJECTS as i64, "every object's column was added");
    // Loaded side by side, the run is still one version: one rollback takes all of it.
    assert_eq!(run(&b, dir.path(), &["rollback", "People"]).status.code(), Some(0));
    assert!(!b.has_table(dir.path(), "People", "people"));
}

fn objects_rolled_back_with_skip_are_not_imported_again_until_they_change(b: &Backend) {
    let dir = people("");
    put(dir.path(), "good.jsonl", "{\"id\": 1}\n", 30);
    run(b, dir.path(), &["run"]);
    let before = b.dump(dir.path(), "People", "people");
    put(dir.path(), "wrong.jsonl", "{\"id\": 666}\n", 20);
    run(b, dir.path(), &["run"]);

    let skipped = run(b, dir.path(), &["rollback", "People", "--skip"]);
    assert_eq!(skipped.status.code(), Some(0), "{}", text(&skipped.stderr));
    assert!(stdout(&skipped).contains("marked skipped"), "{}", stdout(&skipped));
    assert_eq!(b.dump(dir.path(), "People", "people"), before);
    let preview = stdout(&run(b, dir.path(), &["preview", "People"]));
    assert!(preview.contains("wrong.jsonl") && preview.contains("skipped"), "{preview}");
    let next = run(b, dir.path(), &["run"]);
    assert!(stdout(&next).contains("People: succeeded — 0 objects"), "{}", stdout(&next));
    assert_eq!(b.dump(dir.path(), "People", "people"), before, "the skipped object stays out");

    // Fixed at the source, it is a new version and comes in.
    put(dir.path(), "wrong.jsonl", "{\"id\": 2}\n", 10);
    let fixed = run(b, dir.path(), &["run"]);
    assert!(stdout(&fixed).contains("People: succeeded — 1 objects, 1 rows"), "{}", stdout(&fixed));
    assert_eq!(b.strings(dir.path(), "People", "SELECT id || '' FROM people ORDER BY id"), ["1", "2"]);
}

/// A daemon or an embedding program runs one run after another in one process, on pooled connections:
/// each run's rows must still be exactly what its rollback takes away.
fn runs_in_one_process_each_roll_back_exactly_their_own_rows(b: &Backend) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    let config_path = dir.path().join("connector.toml");
    std::fs::write(
        &config_path,
        format!(
            "{}[dataflows.Orders]\nsource = {{ type = \"local\", path = \"data\" }}\nformat = {{ plugin = \"csv\" }}\n",
            b.databases(dir.path())
        ),
    )
    .unwrap();
    let config = sluice::config::Config::load(&config_path).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let runner = sluice::sync::Runner::new(&config, support::host(), runtime.handle().clone());

    put(dir.path(), "1.csv", "id,note\n1,a\n2,b\n3,c\n4,d\n5,e\n", 3);
    assert_eq!(runner.run("Orders", &sluice::sync::Quiet).unwrap().counts.rows, 5);
    let after_first = b.dump(dir.path(), "Orders", "orders");
    put(dir.path(), "2.csv", "id,note\n6,f\n7,g\n8,h\n", 2);
    assert_eq!(runner.run("Orders", &sluice::sync::Quiet).unwrap().counts.rows, 3);
    put(dir.path(), "3.csv", "id,note\n9,i\n", 1);
    assert_eq!(runner.run("Orders", &sluice::sync::Quiet).unwrap().counts.rows, 1);
    assert_eq!(b.count(dir.path(), "Orders", "SELECT count(*) FROM orders"), 9);

    assert_eq!(sluice::sync::rollback(&config, "Orders", false).unwrap().rows_removed, 1);
    assert_eq!(sluice::sync::rollback(&config, "Orders", false).unwrap().rows_removed, 3);
    assert_eq!(b.dump(dir.path(), "Orders", "orders"), after_first);
}

fn a_file_with_more_columns_than_the_database_holds_fails_naming_the_limit_and_is_not_retried(b: &Backend) {
    let dir = configured(
        "[dataflows.Wide]\nsource = { type = \"local\", path = \"data\" }\nformat = { plugin = \"csv\" }\n",
    );
    let header: Vec<String> = (0..2500).map(|n| format!("c{n}")).collect();
    let row: Vec<String> = (0..2500).map(|n| n.to_string()).collect();
    std::fs::write(dir.path().join("data/wide.csv"), format!("{}\n{}\n", header.join(","), row.join(",")))
        .unwrap();
    std::fs::write(dir.path().join("data/narrow.csv"), "c0,c1\n1,2\n").unwrap();
    let output = run(b, dir.path(), &["run"]);
    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    // Sluice's own columns: the lineage, and on PostgreSQL an identity.
    let (database, max, of_a_file, total) =
        if b.is_postgres() { ("PostgreSQL", 1600, 1595, 2504) } else { ("SQLite", 2000, 1995, 2503) };
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "object `wide.csv`: writing table `wide` failed: the records need a table of {total} columns (2500 of the file's"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "{database} holds at most {max} in a table, so at most {of_a_file} of a file's"
        )),
        "{stderr}"
    );
    assert_eq!(b.count(dir.path(), "Wide", "SELECT count(*) FROM wide"), 1, "the narrow file loaded");

    // It can never load as it is: marked failed, not pending, so the next run does not try it again.
    let again = run(b, dir.path(), &["run"]);
    assert_eq!(again.status.code(), Some(0), "{}{}", stdout(&again), text(&again.stderr));
    assert!(stdout(&again).contains("Wide: succeeded — 0 objects"), "{}", stdout(&again));
}

fn a_failed_object_is_imported_again_once_its_options_are_fixed_and_retry_takes_one_on_demand(b: &Backend) {
    let config = |options: &str| {
        format!(
            "[dataflows.Semi]\nsource = {{ type = \"local\", path = \"data\", prefix = \"semi/\" }}\nformat = {{ plugin = \"csv\", options = {{ {options} }} }}\n\n\
             [dataflows.Items]\nsource = {{ type = \"local\", path = \"data\", prefix = \"items/\" }}\nformat = {{ plugin = \"json\" }}\n"
        )
    };
    let dir = configured(&config("delimeter = \";\""));
    std::fs::create_dir_all(dir.path().join("data/semi")).unwrap();
    std::fs::create_dir_all(dir.path().join("data/items")).unwrap();
    std::fs::write(dir.path().join("data/semi/a.csv"), "id;name\n1;Ann\n2;Bo\n").unwrap();
    std::fs::write(dir.path().join("data/items/good.json"), "[{\"id\": 1}]").unwrap();
    std::fs::write(dir.path().join("data/items/bad.json"), "[{\"id\": }]").unwrap();
    let first = run(b, dir.path(), &["run"]);
    assert_eq!(first.status.code(), Some(1), "{}", stdout(&first));
    assert!(text(&first.stderr).contains("unknown option(s): delimeter"), "{}", text(&first.stderr));
    let again = run(b, dir.path(), &["run", "Semi"]);
    assert!(
        stdout(&again).contains("Semi: succeeded — 0 objects"),
        "failed, not retried as it is: {}",
        stdout(&again)
    );

    // The option fixed: the object failed when read another way, so it is worth another try.
    std::fs::write(dir.path().join("connector.toml"), format!("{DATABASES}{}", config("delimiter = \";\"")))
        .unwrap();
    let preview = run(b, dir.path(), &["preview", "Semi"]);
    assert!(stdout(&preview).contains("failed before, read differently now: retry"), "{}", stdout(&preview));
    let fixed = run(b, dir.path(), &["run", "Semi"]);
    assert_eq!(fixed.status.code(), Some(0), "{}{}", stdout(&fixed), text(&fixed.stderr));
    assert!(stdout(&fixed).contains("Semi: succeeded — 1 objects, 2 rows"), "{}", stdout(&fixed));

    // A failure whose cause Sluice cannot see fixed: `retry` takes that object again, and only it.
    let plain = run(b, dir.path(), &["run", "Items"]);
    assert!(stdout(&plain).contains("Items: succeeded — 0 objects"), "{}", stdout(&plain));
    let retried = run(b, dir.path(), &["retry", "Items", "--object", "items/bad.json"]);
    assert_eq!(retried.status.code(), Some(1), "it fails again: {}", stdout(&retried));
    assert!(stdout(&retried).contains("Items: failed — 1 objects, 0 rows"), "{}", stdout(&retried));
    assert!(
        text(&retried.stderr).contains("Items: 1 failed objects to import again"),
        "{}",
        text(&retried.stderr)
    );
    assert_eq!(
        b.count(dir.path(), "Items", "SELECT count(*) FROM items"),
        1,
        "the loaded object is not touched"
    );
    let unknown = run(b, dir.path(), &["retry", "Items", "--object", "items/good.json"]);
    assert_eq!(unknown.status.code(), Some(2), "{}", text(&unknown.stderr));
}

#[test]
fn postgres_over_tls_verify_full_loads_and_a_host_the_certificate_does_not_name_is_refused() {
    let root = sluice_testkit::postgres::ssl_on();
    let b = Backend::postgres();
    let Backend::Postgres(database) = &b else { unreachable!() };
    let dir = people("");
    put(dir.path(), "1.jsonl", "{\"id\": 1}\n{\"id\": 2}\n", 10);
    let tls = |host: &str| {
        format!(
            "{}?sslmode=verify-full&sslrootcert={}",
            database.url().replace("@127.0.0.1:", &format!("@{host}:")),
            root.display()
        )
    };
    let run_on = |url: &str| {
        b.command(dir.path())
            .args(["run"])
            .env("SLUICE_STATE_URL", url)
            .env("SLUICE_SINK_URL", url)
            .output()
            .unwrap()
    };
    let refused = run_on(&tls("127.0.0.1"));
    assert_eq!(refused.status.code(), Some(1), "{}", stdout(&refused));
    let stderr = text(&refused.stderr);
    assert!(stderr.contains("not valid for name") && stderr.contains("127.0.0.1"), "{stderr}");
    assert!(!stderr.contains("sslrootcert="), "the URL's options are not printed: {stderr}");

    let loaded = run_on(&tls("localhost"));
    assert_eq!(loaded.status.code(), Some(0), "{}", text(&loaded.stderr));
    assert!(stdout(&loaded).contains("People: succeeded — 1 objects, 2 rows"), "{}", stdout(&loaded));
    assert_eq!(b.count(dir.path(), "People", "SELECT count(*) FROM people"), 2);
}

/// A dataflow `Catalog` of CSV files into the table `products` (replaced at each run), through a mapping
/// that takes a tier only from `tiers`.
fn catalog_mapped(dir: &Path, tiers: &str) {
    let config = format!(
        "{DATABASES}[dataflows.Catalog]\nsource = {{ type = \"local\", path = \"data\" }}\nformat = {{ plugin = \"csv\" }}\n\
         sink = {{ table = \"products\", mode = \"replace\" }}\n\n[dataflows.Catalog.template]\nplugin = \"map\"\n\
         [dataflows.Catalog.template.options.fields]\nsku = \"sku\"\nprice = {{ column = \"price\", type = \"integer\" }}\n\
         tier = {{ column = \"tier\", type = \"enum\", values = [{tiers}] }}\n"
    );
    std::fs::write(dir.join("connector.toml"), config).unwrap();
}

fn rejects_replayed_after_the_mapping_is_fixed_load_with_their_lineage_and_a_rollback_undoes_it(b: &Backend) {
    let dir = configured("");
    catalog_mapped(dir.path(), r#""basic""#);
    // Line 3: a tier the mapping does not take yet; line 4: a tier it never takes; line 5: a row the
    // parser refuses, which only a new read of the file mends.
    put(dir.path(), "a.csv", "sku,price,tier\nmug,12,basic\nlamp,30,premium\npen,2,gold\ncup,3,basic,x\n", 2);
    let first = run(b, dir.path(), &["run", "Catalog"]);
    assert!(stdout(&first).contains("1 objects, 1 rows, 3 rejected"), "{}", stdout(&first));
    let table = || {
        b.strings(dir.path(), "Catalog", "SELECT sku || '|' || tier || '|' || _sluice_object || '|' || _sluice_line FROM products ORDER BY _sluice_line")
    };
    let rejects = || -> Vec<(u64, String, String)> {
        let output = run(b, dir.path(), &["rejects", "Catalog", "--json"]);
        let listed: Vec<serde_json::Value> = serde_json::from_slice(&output.stdout).unwrap();
        let stage = |r: &serde_json::Value| r["stage"].as_str().unwrap_or("none").to_string();
        listed
            .iter()
            .map(|r| (r["line"].as_u64().unwrap(), stage(r), r["reason"].as_str().unwrap().to_string()))
            .collect()
    };
    let before = rejects();
    let stages: Vec<(u64, &str)> = before.iter().map(|(line, stage, _)| (*line, stage.as_str())).collect();
    assert_eq!(stages, [(3, "template"), (4, "template"), (5, "parse")], "{before:?}");

    catalog_mapped(dir.path(), r#""basic", "premium""#);
    let replay = run(b, dir.path(), &["run", "Catalog", "--replay-rejects"]);
    assert_eq!(replay.status.code(), Some(0), "{}", text(&replay.stderr));
    assert!(
        stdout(&replay).contains(
            "Catalog: replay succeeded — 2 rows tried again from 1 objects: 1 went through, 1 rejected again"
        ),
        "{}",
        stdout(&replay)
    );
    assert!(
        text(&replay.stderr).contains("1 rejected rows left as they are: the format plugin refused it"),
        "{}",
        text(&replay.stderr)
    );
    // The row that went through, beside the rows of the load (a replay replaces nothing), with its lineage.
    assert_eq!(table(), ["mug|basic|a.csv|2", "lamp|premium|a.csv|3"]);
    let runs: serde_json::Value =
        serde_json::from_slice(&run(b, dir.path(), &["history", "Catalog", "--json"]).stdout).unwrap();
    let replay_run = runs[0]["run"].as_i64().unwrap();
    assert_eq!((runs[0]["rows_written"].as_u64(), runs[0]["rows_rejected"].as_u64()), (Some(1), Some(1)));
    // By run: the parser's reject of the load, then the row the replay refused again.
    let after = rejects();
    assert_eq!(after.len(), 2, "{after:?}");
    assert_eq!(after[0], before[2], "the parse reject is as it was");
    assert_eq!((after[1].0, after[1].1.as_str()), (4, "template"));
    assert!(after[1].2.contains("gold"), "refused again, with the reason of now: {after:?}");
    let output = run(b, dir.path(), &["rejects", "Catalog", "--run", &replay_run.to_string(), "--json"]);
    let of_replay: Vec<serde_json::Value> = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(of_replay.len(), 1, "the row refused again is the replay's");

    // A rollback of the replay: its row leaves the table, and the rows it tried are rejected again.
    let rolled = run(b, dir.path(), &["rollback", "Catalog"]);
    assert_eq!(rolled.status.code(), Some(0), "{}", text(&rolled.stderr));
    assert_eq!(table(), ["mug|basic|a.csv|2"]);
    assert_eq!(rejects(), before);

    // And a replay again after it, then nothing left to replay.
    assert_eq!(run(b, dir.path(), &["run", "Catalog", "--replay-rejects"]).status.code(), Some(0));
    assert_eq!(table(), ["mug|basic|a.csv|2", "lamp|premium|a.csv|3"]);
    let again = run(b, dir.path(), &["run", "Catalog", "--replay-rejects"]);
    assert!(
        stdout(&again).contains("1 rows tried again from 1 objects: 0 went through, 1 rejected again"),
        "{}",
        stdout(&again)
    );
    assert_eq!(table().len(), 2);
}
