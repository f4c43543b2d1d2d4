//! Stripe's objects becoming tables, against the Stripe stand-in, on both databases: a table per object
//! merged on `id`, nested objects as JSON, later runs taking new objects by `created` and changed ones
//! from the events, new fields as new columns, `sluice preview` counting before any import, the list and
//! remove, and a wrong key failing the run at once.

mod support;

use serde_json::json;
use sluice_testkit::stripe::{Fault, StripeServer, TEST_KEY};
use std::path::Path;
use std::process::Output;
use support::backend::{Backend, DATABASES};

on_both_backends!(
    stripe_objects_become_tables_merged_on_id_and_later_runs_take_new_and_changed_objects,
    remove_deletes_every_table_and_the_next_run_imports_everything_again,
    rollback_takes_the_tables_back_before_the_newest_run_and_the_next_run_merges_stripe_in_again,
);

fn run(b: &Backend, dir: &Path, key: &str, args: &[&str]) -> Output {
    b.command(dir).env("TEST_STRIPE_KEY", key).args(args).output().expect("running sluice")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A dataflow `Billing` importing `tables` from `stripe`.
fn billing(stripe: &StripeServer, tables: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "{DATABASES}[dataflows.Billing]\ndisplay_name = \"Stripe billing\"\n\n[dataflows.Billing.source]\ntype = \"stripe\"\n\
         tables = {tables}\napi_key = \"${{TEST_STRIPE_KEY}}\"\napi_base = \"{}\"\nrate_limit = 500\n",
        stripe.url()
    );
    std::fs::write(dir.path().join("connector.toml"), config).unwrap();
    dir
}

/// The table of a Stripe object as the backend names it.
fn table(b: &Backend, object: &str) -> String {
    if b.is_postgres() { object.to_string() } else { format!("billing_{object}") }
}

/// Puts 150 customers (created ten minutes apart, from three days ago), 3 products and 2 charges in the
/// stand-in.
fn seed(stripe: &StripeServer) -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    for n in 0..150 {
        let customer =
            json!({ "id": format!("cus_{n:03}"), "email": format!("c{n}@example.com"), "balance": n });
        stripe.insert("customers", customer, now - 86_400 * 3 + n * 600);
    }
    for n in 0..3 {
        stripe.insert(
            "products",
            json!({ "id": format!("prod_{n}"), "name": format!("P{n}"), "active": true }),
            now - 7200,
        );
    }
    let charge = json!({ "amount": 500, "currency": "usd", "paid": true, "metadata": { "order": "A-7" }, "refunds": { "data": [] } });
    stripe.insert("charges", charge, now - 3600);
    stripe.insert(
        "charges",
        json!({ "amount": 250, "currency": "eur", "paid": false, "metadata": {} }),
        now - 1800,
    );
    now
}

const TABLES: &str = "[\"customers\", \"products\", \"charges\"]";

fn stripe_objects_become_tables_merged_on_id_and_later_runs_take_new_and_changed_objects(b: &Backend) {
    let stripe = StripeServer::start();
    let now = seed(&stripe);
    let dir = billing(&stripe, TABLES);

    let preview = run(b, dir.path(), TEST_KEY, &["preview", "Billing"]);
    assert_eq!(preview.status.code(), Some(0), "{}", text(&preview.stderr));
    let shown = text(&preview.stdout);
    let customers_line = shown.lines().find(|l| l.starts_with("customers")).unwrap_or_default().to_string();
    assert!(customers_line.split_whitespace().collect::<Vec<_>>()[2..] == ["150", "150", "-"], "{shown}");
    assert!(
        !dir.path().join("sluice.db").exists() || !b.has_table(dir.path(), "Billing", &table(b, "customers"))
    );

    let output = run(b, dir.path(), TEST_KEY, &["run"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(
        text(&output.stdout).contains("Billing: succeeded — 3 tables, 155 rows"),
        "{}",
        text(&output.stdout)
    );
    let count =
        |object: &str| b.count(dir.path(), "Billing", &format!("SELECT count(*) FROM {}", table(b, object)));
    assert_eq!((count("customers"), count("products"), count("charges")), (150, 3, 2));
    let order = b.strings(
        dir.path(),
        "Billing",
        &format!("SELECT CAST(metadata AS TEXT) FROM {} WHERE amount = 500", table(b, "charges")),
    );
    assert!(order[0].contains("A-7"), "nested objects are kept as JSON: {order:?}");

    // Nothing new: the lookback lists the newest again, and merging on `id` keeps every row once.
    assert_eq!(run(b, dir.path(), TEST_KEY, &["run"]).status.code(), Some(0));
    assert_eq!(count("customers"), 150);

    // A new customer, an old one changed (an event), a product with a field no row had.
    stripe.insert("customers", json!({ "id": "cus_new", "email": "new@example.com", "balance": 0 }), now);
    stripe.update("customers", "cus_000", json!({ "email": "changed@example.com" }), now);
    stripe.insert(
        "products",
        json!({ "id": "prod_9", "name": "P9", "active": true, "tax_code": "txcd_99999999" }),
        now,
    );
    let before = stripe.received().len();
    let output = run(b, dir.path(), TEST_KEY, &["run"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_eq!((count("customers"), count("products")), (151, 4));
    let listed: Vec<String> = stripe.received()[before..]
        .iter()
        .filter(|r| r.path == "/v1/customers")
        .map(|r| r.query.clone())
        .collect();
    assert_eq!(listed.len(), 1, "one page of recent customers, not all 151: {listed:?}");
    assert!(listed[0].contains("created%5Bgte%5D="), "{listed:?}");
    let email = b.strings(
        dir.path(),
        "Billing",
        &format!("SELECT email FROM {} WHERE id = 'cus_000'", table(b, "customers")),
    );
    assert_eq!(email, ["changed@example.com"], "the change came through the events");
    let tax = b.strings(
        dir.path(),
        "Billing",
        &format!("SELECT tax_code FROM {} WHERE id = 'prod_9'", table(b, "products")),
    );
    assert_eq!(tax, ["txcd_99999999"], "a new field is a new column");

    let list = text(&run(b, dir.path(), TEST_KEY, &["dataflows"]).stdout);
    let line = list.lines().find(|l| l.starts_with("Billing")).unwrap().to_string();
    let backend = if b.is_postgres() { "postgres" } else { "sqlite" };
    assert!(line.contains(&format!("stripe ─► {backend}")) && line.contains("succeeded"), "{list}");
    assert_eq!(line.split_whitespace().nth(5), Some("3"), "three tables: {list}");
}

fn remove_deletes_every_table_and_the_next_run_imports_everything_again(b: &Backend) {
    let stripe = StripeServer::start();
    seed(&stripe);
    let dir = billing(&stripe, TABLES);
    assert_eq!(run(b, dir.path(), TEST_KEY, &["run"]).status.code(), Some(0));
    let removed = run(b, dir.path(), TEST_KEY, &["remove", "Billing", "--yes"]);
    assert_eq!(removed.status.code(), Some(0), "{}", text(&removed.stderr));
    for object in ["customers", "products", "charges"] {
        assert!(!b.has_table(dir.path(), "Billing", &table(b, object)), "{object} is gone");
    }
    let again = run(b, dir.path(), TEST_KEY, &["run"]);
    assert!(
        text(&again.stdout).contains("Billing: succeeded — 3 tables, 155 rows"),
        "{}",
        text(&again.stdout)
    );
}

fn rollback_takes_the_tables_back_before_the_newest_run_and_the_next_run_merges_stripe_in_again(b: &Backend) {
    let stripe = StripeServer::start();
    let now = seed(&stripe);
    let dir = billing(&stripe, TABLES);
    assert_eq!(run(b, dir.path(), TEST_KEY, &["run"]).status.code(), Some(0));
    stripe.insert("customers", json!({ "id": "cus_new", "email": "new@example.com" }), now);
    stripe.update("customers", "cus_000", json!({ "email": "changed@example.com" }), now);
    assert_eq!(run(b, dir.path(), TEST_KEY, &["run"]).status.code(), Some(0));
    let customers = table(b, "customers");
    let email = |id: &str| {
        b.strings(dir.path(), "Billing", &format!("SELECT email FROM {customers} WHERE id = '{id}'"))
    };
    assert_eq!(email("cus_000"), ["changed@example.com"]);

    let rolled_back = run(b, dir.path(), TEST_KEY, &["rollback", "Billing"]);
    assert_eq!(rolled_back.status.code(), Some(0), "{}", text(&rolled_back.stderr));
    assert_eq!(email("cus_000"), ["c0@example.com"], "the row as it was before the run");
    assert!(email("cus_new").is_empty(), "the run's new row is gone");
    let products = b.count(dir.path(), "Billing", &format!("SELECT count(*) FROM {}", table(b, "products")));
    assert_eq!(products, 3, "the products, merged again by the run, are as they were");

    let again = run(b, dir.path(), TEST_KEY, &["run"]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again.stderr));
    assert_eq!(
        (email("cus_000"), email("cus_new")),
        (vec!["changed@example.com".to_string()], vec!["new@example.com".to_string()])
    );
}

#[test]
fn a_wrong_key_fails_the_run_at_once_and_a_429_while_listing_is_ridden_out() {
    let b = &Backend::sqlite();
    let stripe = StripeServer::start();
    seed(&stripe);
    let dir = billing(&stripe, TABLES);
    let output = run(b, dir.path(), "sk_test_not_this_one_1111", &["run"]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    assert!(
        text(&output.stderr).contains("Invalid API Key provided: sk_test_****1111"),
        "{}",
        text(&output.stderr)
    );
    assert_eq!(stripe.received().len(), 1, "one refusal");

    stripe.fail_next(2, Fault::RateLimited { should_retry: None });
    stripe.fail_next(1, Fault::ServerError);
    let output = run(b, dir.path(), TEST_KEY, &["run"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(text(&output.stdout).contains("Billing: succeeded — 3 tables"), "{}", text(&output.stdout));
    let customers = support::backend::sqlite_strings(
        &dir.path().join("sluice.db"),
        "SELECT count(*) FROM billing_customers",
    );
    assert_eq!(customers.unwrap(), ["150"]);
}

#[test]
fn a_stripe_source_refuses_settings_that_are_for_files() {
    let stripe = StripeServer::start();
    let dir = billing(&stripe, TABLES);
    let path = dir.path().join("connector.toml");
    let config = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, format!("{config}\n[dataflows.Billing.format]\nplugin = \"csv\"\n")).unwrap();
    let output = run(&Backend::sqlite(), dir.path(), TEST_KEY, &["run"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output.stderr).contains("a Stripe source reads records, not files"),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn the_example_configuration_imports_the_ten_stripe_tables() {
    let stripe = StripeServer::start();
    seed(&stripe);
    stripe.insert(
        "invoices",
        json!({ "customer": "cus_001", "lines": { "data": [{ "amount": 900 }] } }),
        1_760_000_000,
    );
    let dir = tempfile::tempdir().unwrap();
    let example = support::root().join("examples/stripe/connector.toml");
    let output = Backend::sqlite()
        .command(dir.path())
        .arg("--config")
        .arg(&example)
        .args(["run", "Billing"])
        .env("SLUICE_STATE_URL", format!("sqlite://{}", dir.path().join("state.db").display()))
        .env("SLUICE_SINK_URL", format!("sqlite://{}", dir.path().join("tables.db").display()))
        .env("STRIPE_API_KEY", TEST_KEY)
        .env("STRIPE_API_BASE", stripe.url())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    // 155 seeded objects, the invoice, and an event for each of the 156.
    assert!(
        text(&output.stdout).contains("Billing: succeeded — 10 tables, 312 rows"),
        "{}",
        text(&output.stdout)
    );
    let listed: std::collections::BTreeSet<String> =
        stripe.received().iter().map(|r| r.path.trim_start_matches("/v1/").to_string()).collect();
    assert_eq!(listed.len(), 10, "each table listed: {listed:?}");
    let lines = support::backend::sqlite_strings(
        &dir.path().join("tables.db"),
        "SELECT CAST(lines AS TEXT) FROM billing_invoices",
    )
    .unwrap();
    assert!(lines[0].contains("900"), "{lines:?}");
}
