//! Files becoming Stripe objects, against the Stripe stand-in: products from a CSV through the `map`
//! template, created then updated (never duplicated), Stripe's refusals kept per row with its message and
//! request id, a wrong key failing the run at once, 429 storms and 500s ridden out under the rate limit,
//! a run killed mid-import resumed with every object created once, the example configuration, and the
//! client itself meeting idempotent replays and Stripe-like pagination.

mod support;

use sluice_testkit::stripe::{API_VERSION, Fault, Settings, StripeServer, TEST_KEY};
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};
use support::backend::{Backend, DATABASES};

on_both_backends!(
    every_supported_object_is_created_then_updated_with_only_what_its_update_takes,
    a_price_whose_amount_changes_is_replaced_and_the_old_one_archived,
    a_products_csv_becomes_stripe_products_and_a_changed_file_updates_them_without_duplicates,
    rows_stripe_refuses_are_rejected_with_its_message_and_request_id_and_the_others_land,
    customers_are_known_again_by_their_external_id_and_updated_not_duplicated,
    a_run_killed_mid_import_is_resumed_with_every_object_created_once,
    rejects_replayed_after_the_mapping_and_stripe_are_fixed_land_once_and_leave_the_rejects,
);

fn sluice(b: &Backend, dir: &Path, key: &str) -> Command {
    let mut command = b.command(dir);
    command.env("TEST_STRIPE_KEY", key).env("RUST_LOG", "debug");
    command
}

fn run(b: &Backend, dir: &Path, args: &[&str]) -> Output {
    support::output(sluice(b, dir, TEST_KEY).args(args))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A dataflow `Catalog` importing `data/*.csv` into `object` on `stripe` through `template` (TOML lines
/// under `[dataflows.Catalog.template]`, or none), with `sink` settings added to the sink table.
fn catalog(stripe: &StripeServer, object: &str, template: Option<&str>, sink: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    let template = template.map(|t| format!("\n[dataflows.Catalog.template]\n{t}")).unwrap_or_default();
    let config = format!(
        "{DATABASES}[dataflows.Catalog]\nsource = {{ type = \"local\", path = \"data\" }}\nformat = {{ plugin = \"csv\" }}\n\n\
         [dataflows.Catalog.sink]\ntype = \"stripe\"\nobject = \"{object}\"\napi_key = \"${{TEST_STRIPE_KEY}}\"\napi_base = \"{}\"\n{sink}\n{template}",
        stripe.url()
    );
    std::fs::write(dir.path().join("connector.toml"), config).unwrap();
    dir
}

/// Writes `data/{name}` as if modified `minutes_ago`.
fn put(dir: &Path, name: &str, text: &str, minutes_ago: u64) {
    let path = dir.join("data").join(name);
    std::fs::write(&path, text).unwrap();
    let file = std::fs::File::options().write(true).open(&path).unwrap();
    file.set_modified(std::time::SystemTime::now() - Duration::from_secs(minutes_ago * 60)).unwrap();
}

const PRODUCTS_TEMPLATE: &str = r#"plugin = "map"
options.object = "products"
[dataflows.Catalog.template.options.fields]
id = "sku"
name = "title"
"metadata.sku" = "sku"
"default_price_data.currency" = { column = "currency", type = "currency" }
"default_price_data.unit_amount" = { column = "price", type = "amount", currency_column = "currency" }
"#;

fn a_products_csv_becomes_stripe_products_and_a_changed_file_updates_them_without_duplicates(b: &Backend) {
    let stripe = StripeServer::start();
    let dir = catalog(&stripe, "products", Some(PRODUCTS_TEMPLATE), "");
    put(
        dir.path(),
        "products.csv",
        "sku,title,price,currency\nmug,Mug,12.50,usd\nposter,Poster & Frame,1500,jpy\nkettle,Kettle,-1,usd\n",
        60,
    );
    let output = run(b, dir.path(), &["run"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(
        text(&output.stdout).contains("Catalog: succeeded — 1 objects, 2 rows, 1 rejected"),
        "{}",
        text(&output.stdout)
    );

    let products = stripe.objects("products");
    assert_eq!(products.len(), 2);
    assert_eq!((products[0]["id"].as_str(), products[0]["name"].as_str()), (Some("mug"), Some("Mug")));
    assert_eq!(products[1]["name"], "Poster & Frame");
    assert_eq!(products[0]["metadata"]["sku"], "mug");
    let prices = stripe.objects("prices");
    assert_eq!(
        (prices[0]["unit_amount"].as_i64(), prices[0]["currency"].as_str()),
        (Some(1250), Some("usd"))
    );
    assert_eq!(prices[1]["unit_amount"].as_i64(), Some(1500));

    // On the wire: Stripe's bracketed names, the pinned version, an idempotency key per write.
    let received = stripe.received();
    let create = received.iter().find(|r| r.method == "POST" && r.body.contains("id=mug")).unwrap();
    assert!(create.body.contains("metadata%5Bsku%5D=mug"), "{}", create.body);
    assert!(create.body.contains("default_price_data%5Bunit_amount%5D=1250"), "{}", create.body);
    assert!(received.iter().all(|r| r.stripe_version.as_deref() == Some(API_VERSION)));
    assert!(received.iter().all(|r| r.idempotency_key.as_deref().is_some_and(|k| k.starts_with("sluice-"))));

    let results = b.strings(
        dir.path(),
        "Catalog",
        "SELECT external_id || '|' || stripe_id || '|' || action || '|' || CASE WHEN request_id LIKE 'req_%' THEN 'req' ELSE 'none' END FROM stripe_products ORDER BY _sluice_line",
    );
    assert_eq!(results, ["mug|mug|created|req", "poster|poster|created|req"]);

    // The file again, changed: the products are updated in place.
    put(
        dir.path(),
        "products.csv",
        "sku,title,price,currency\nmug,Big Mug,13.00,usd\nposter,Poster & Frame,1500,jpy\n",
        1,
    );
    let output = run(b, dir.path(), &["run"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let products = stripe.objects("products");
    assert_eq!(products.len(), 2, "no duplicates: {products:#?}");
    assert_eq!(products[0]["name"], "Big Mug");
    let updated =
        b.count(dir.path(), "Catalog", "SELECT count(*) FROM stripe_products WHERE action = 'updated'");
    assert_eq!(updated, 2);
    // An update leaves out what Stripe only takes on create.
    let update = stripe.received().into_iter().find(|r| r.path == "/v1/products/mug").unwrap();
    assert!(
        !update.body.contains("default_price_data") && !update.body.contains("id=mug"),
        "{}",
        update.body
    );

    let everything = text(&output.stdout) + &text(&output.stderr);
    assert!(!everything.contains(TEST_KEY), "the key is never printed");
    // Run History, object by object: the first run's file, with what Stripe took and refused.
    let first_run = text(&run(b, dir.path(), &["history", "Catalog", "--run", "1"]).stdout);
    let line = first_run.lines().find(|l| l.starts_with("products.csv")).unwrap_or_default().to_string();
    assert_eq!(
        line.split_whitespace().collect::<Vec<_>>(),
        ["products.csv", "loaded", "2", "1"],
        "{first_run}"
    );

    let list = text(&run(b, dir.path(), &["dataflows"]).stdout);
    assert!(list.contains("local ─► stripe products") && list.contains("succeeded"), "{list}");
    let rollback = run(b, dir.path(), &["rollback", "Catalog"]);
    assert_ne!(rollback.status.code(), Some(0));
    assert!(text(&rollback.stderr).contains("cannot be rolled back"), "{}", text(&rollback.stderr));
}

fn rows_stripe_refuses_are_rejected_with_its_message_and_request_id_and_the_others_land(b: &Backend) {
    let stripe = StripeServer::start();
    // No template: the columns are Stripe's parameters as they are.
    let dir = catalog(&stripe, "products", None, "");
    put(
        dir.path(),
        "products.csv",
        "id,name,default_price_data.currency,default_price_data.unit_amount\n\
         a,Good,usd,100\nb,Bad currency,xyz,100\nc,Negative,usd,-5\nd,Also good,eur,250\n,No id,usd,1\n",
        60,
    );
    let output = run(b, dir.path(), &["run"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(text(&output.stdout).contains("2 rows, 3 rejected"), "{}", text(&output.stdout));
    let mut ids: Vec<String> =
        stripe.objects("products").iter().map(|p| p["id"].as_str().unwrap().to_string()).collect();
    ids.sort();
    assert_eq!(ids, ["a", "d"]);

    let rejects =
        b.strings(dir.path(), "Catalog", "SELECT line || ' ' || reason FROM _sluice_rejects ORDER BY line");
    assert_eq!(rejects.len(), 3, "{rejects:#?}");
    assert!(
        rejects[0].starts_with("3 Stripe refused the create of products `b`: Invalid currency: xyz.")
            && rejects[0].contains("request req_"),
        "{}",
        rejects[0]
    );
    assert!(
        rejects[1].starts_with(
            "4 Stripe refused the create of products `c`: This value must be greater than or equal to 0."
        ) && rejects[1].contains("param default_price_data[unit_amount]"),
        "{}",
        rejects[1]
    );
    assert!(rejects[2].starts_with("6 field `id` is empty"), "{}", rejects[2]);

    // `sluice rejects` lists the rows Stripe refused, each with the record that was sent as its raw text.
    let listed = run(b, dir.path(), &["rejects", "Catalog", "--reason", "stripe refused", "--json"]);
    let listed: Vec<serde_json::Value> = serde_json::from_slice(&listed.stdout).unwrap();
    let sent = |r: &serde_json::Value| -> serde_json::Value {
        serde_json::from_str(r["raw"].as_str().unwrap()).unwrap()
    };
    let lines: Vec<_> = listed.iter().map(|r| (r["line"].as_u64(), sent(r)["id"].clone())).collect();
    assert_eq!(lines, [(Some(3), serde_json::json!("b")), (Some(4), serde_json::json!("c"))]);
    assert_eq!(sent(&listed[1])["default_price_data.unit_amount"], "-5");
}

#[test]
fn a_wrong_key_fails_the_run_at_once_with_stripes_message_after_one_request() {
    // Where the results go is not what this test is about.
    let b = &Backend::sqlite();
    let stripe = StripeServer::start();
    let dir = catalog(&stripe, "products", None, "rate_limit = 400\n");
    let rows: String = (0..200).map(|i| format!("p{i},Product {i}\n")).collect();
    put(dir.path(), "a.csv", &format!("id,name\n{rows}"), 60);
    put(dir.path(), "b.csv", &format!("id,name\n{rows}"), 50);
    let output = sluice(b, dir.path(), "sk_test_wrong_key_0000").arg("run").output().unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("Stripe refused the API key: Invalid API Key provided: sk_test_****0000"),
        "{stderr}"
    );
    assert!(stderr.contains("the run stopped there, 1 objects left for the next run"), "{stderr}");
    assert_eq!(stripe.received().len(), 1, "one refusal, not one per row or per object");
    let history =
        text(&sluice(b, dir.path(), TEST_KEY).args(["history", "Catalog"]).output().unwrap().stdout);
    assert!(history.contains("failed") && history.contains("Invalid API Key provided"), "{history}");
    assert!(!history.contains("sk_test_wrong_key_0000"), "the key is not kept in run history");

    assert!(
        !stderr.contains("sk_test_wrong_key_0000")
            && !text(&output.stdout).contains("sk_test_wrong_key_0000")
    );
    assert!(stripe.objects("products").is_empty());

    // With the right key, the next run imports both files.
    let output = run(b, dir.path(), &["run"]);
    assert!(
        text(&output.stdout).contains("Catalog: succeeded — 2 objects, 400 rows"),
        "{}",
        text(&output.stdout)
    );
    assert_eq!(stripe.objects("products").len(), 200);
}

#[test]
fn a_429_storm_and_server_errors_are_ridden_out_and_every_row_lands_once() {
    // Where the results go is not what this test is about.
    let b = &Backend::sqlite();
    // Stripe's limit is below what the client is set to, and faults come on top.
    let stripe = StripeServer::start_with(Settings { rate_limit: Some(40), burst: 4, ..Settings::default() });
    let dir = catalog(&stripe, "products", None, "rate_limit = 80\nconcurrency = 8\n");
    let rows: String = (0..120).map(|i| format!("p{i},Product {i}\n")).collect();
    put(dir.path(), "products.csv", &format!("id,name\n{rows}"), 60);
    stripe.fail_next(3, Fault::ServerError);
    stripe.fail_next(3, Fault::RateLimited { should_retry: Some(true) });
    let output = run(b, dir.path(), &["run"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(stripe.count(429) > 3, "the stand-in's limit was met: {}", stripe.count(429));
    assert_eq!(stripe.objects("products").len(), 120);
    assert_eq!(stripe.count(200), 120, "each row created once");
}

#[test]
fn at_stripes_rate_no_request_is_refused_for_rate_and_stripe_should_retry_false_is_honoured() {
    // Where the results go is not what this test is about.
    let b = &Backend::sqlite();
    let stripe = StripeServer::start_with(Settings { rate_limit: Some(50), burst: 5, ..Settings::default() });
    let dir = catalog(&stripe, "products", None, "rate_limit = 50\n");
    let rows: String = (0..100).map(|i| format!("p{i},Product {i}\n")).collect();
    put(dir.path(), "products.csv", &format!("id,name\n{rows}"), 60);
    let started = Instant::now();
    let output = run(b, dir.path(), &["run"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_eq!(stripe.count(429), 0, "the client keeps under the limit");
    assert!(started.elapsed() >= Duration::from_millis(1900), "100 requests at 50/s take about 2 s");

    // Stripe says a 429 must not be retried: the row is refused with its message; as it is the object's
    // only row, nothing of the object landed, and the run says so.
    stripe.fail_next(1, Fault::RateLimited { should_retry: Some(false) });
    put(dir.path(), "more.csv", "id,name\nq1,One\n", 1);
    let output = run(b, dir.path(), &["run"]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stdout));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("every record was refused (1 of them), none landed; the first, line 2: Stripe refused the create of products `q1`: Request rate limit exceeded"),
        "{stderr}"
    );
    assert_eq!(stripe.count(429), 1);
}

/// Customers, known again by their `customer_no`.
const CUSTOMERS_TEMPLATE: &str = r#"plugin = "map"
options.object = "customers"
[dataflows.Catalog.template.options.fields]
"metadata.external_id" = "customer_no"
email = "email"
name = "name"
"#;

fn customers_are_known_again_by_their_external_id_and_updated_not_duplicated(b: &Backend) {
    let stripe = StripeServer::start();
    let dir = catalog(&stripe, "customers", Some(CUSTOMERS_TEMPLATE), "");
    put(
        dir.path(),
        "customers.csv",
        "customer_no,email,name\nc1,ann@example.com,Ann\nc2,bo@example.com,Bo\n",
        60,
    );
    assert_eq!(run(b, dir.path(), &["run"]).status.code(), Some(0));
    put(dir.path(), "update.csv", "customer_no,email,name\nc1,ann@new.example.com,Ann\n", 1);
    let output = run(b, dir.path(), &["run"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let customers = stripe.objects("customers");
    assert_eq!(customers.len(), 2, "{customers:#?}");
    assert_eq!(customers[0]["email"], "ann@new.example.com");
    assert_eq!(customers[0]["metadata"]["external_id"], "c1");
}

fn a_run_killed_mid_import_is_resumed_with_every_object_created_once(b: &Backend) {
    // Customers have no caller id: only the idempotency keys stop the resumed run creating them twice.
    let stripe = StripeServer::start_with(Settings { rate_limit: Some(40), burst: 1, ..Settings::default() });
    let template = r#"plugin = "map"
options.object = "customers"
[dataflows.Catalog.template.options.fields]
"metadata.external_id" = "no"
name = "name"
"#;
    let dir = catalog(&stripe, "customers", Some(template), "rate_limit = 40\n");
    // A killed run's lease (on PostgreSQL) keeps the next run out until it expires: a short one.
    let config = dir.path().join("connector.toml");
    let settings = std::fs::read_to_string(&config).unwrap();
    assert!(settings.contains("[state]\n"), "{settings}");
    std::fs::write(&config, settings.replacen("[state]\n", "[state]\nlease_timeout = \"1s\"\n", 1)).unwrap();
    let rows: String = (0..150).map(|i| format!("{i},Customer {i}\n")).collect();
    put(dir.path(), "customers.csv", &format!("no,name\n{rows}"), 60);

    let mut child = sluice(b, dir.path(), TEST_KEY)
        .arg("run")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while stripe.objects("customers").len() < 40 {
        assert!(Instant::now() < deadline, "the run made no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let before = stripe.objects("customers").len();
    assert!(before < 150, "killed part-way ({before} created)");

    std::thread::sleep(Duration::from_millis(1500));
    let output = run(b, dir.path(), &["run"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let customers = stripe.objects("customers");
    let mut numbers: Vec<&str> =
        customers.iter().map(|c| c["metadata"]["external_id"].as_str().unwrap()).collect();
    numbers.sort();
    numbers.dedup();
    assert_eq!((customers.len(), numbers.len()), (150, 150), "every customer once");
    let replayed = b.count(dir.path(), "Catalog", "SELECT count(*) FROM stripe_customers");
    assert_eq!(replayed, 150, "the results of the resumed run name every customer");
}

#[test]
fn the_example_configuration_makes_a_products_csv_in_a_bucket_into_stripe_products() {
    // Where the results go is not what this test is about.
    let b = &Backend::sqlite();
    use sluice_testkit::s3::{ACCESS_KEY, S3Server, SECRET_KEY};
    let s3 = S3Server::start();
    s3.create_bucket("acme-catalog");
    let csv = std::fs::read(support::root().join("examples/stripe/products.csv")).unwrap();
    s3.put("acme-catalog", "products/2026-11.csv", &csv, std::time::SystemTime::now());
    let stripe = StripeServer::start();
    let dir = tempfile::tempdir().unwrap();
    let example = support::root().join("examples/stripe/connector.toml");
    let sluice_in = |args: &[&str]| {
        sluice(b, dir.path(), TEST_KEY)
            .arg("--config")
            .arg(&example)
            .args(args)
            .env("SLUICE_STATE_URL", format!("sqlite://{}", dir.path().join("state.db").display()))
            .env("SLUICE_SINK_URL", format!("sqlite://{}", dir.path().join("results.db").display()))
            .env("STRIPE_API_KEY", TEST_KEY)
            .env("STRIPE_API_BASE", stripe.url())
            .env("S3_ENDPOINT", s3.endpoint())
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .output()
            .unwrap()
    };
    let preview = sluice_in(&["preview", "Catalog"]);
    assert_eq!(preview.status.code(), Some(0), "{}", text(&preview.stderr));
    let shown = text(&preview.stdout);
    assert!(shown.contains("\"default_price_data.unit_amount\":1250") && shown.contains("line 5"), "{shown}");
    assert!(stripe.received().is_empty(), "a preview sends nothing");

    let output = sluice_in(&["run", "Catalog"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(
        text(&output.stdout).contains("Catalog: succeeded — 1 objects, 4 rows, 1 rejected"),
        "{}",
        text(&output.stdout)
    );
    let products = stripe.objects("products");
    let mut ids: Vec<&str> = products.iter().map(|p| p["id"].as_str().unwrap()).collect();
    ids.sort();
    assert_eq!(ids, ["mug-black", "mug-white", "poster-a2", "tote"]);
    let tote = products.iter().find(|p| p["id"] == "tote").unwrap();
    assert_eq!(
        (tote["active"].as_bool(), tote["metadata"]["source"].as_str()),
        (Some(false), Some("s3-catalog"))
    );
}

#[test]
fn the_client_meets_replays_after_a_lost_answer_refuses_a_reused_key_and_lists_page_by_page() {
    use sluice::config::Secret;
    use sluice::stripe::{ClientSettings, StripeClient, StripeError};
    let stripe = StripeServer::start();
    let mut settings = ClientSettings::new(Secret::new(TEST_KEY));
    settings.api_base = stripe.url().to_string();
    settings.account = Some("acct_connected_1".into());
    settings.timeout = Duration::from_millis(300);
    settings.first_backoff = Duration::from_millis(50);
    let client = StripeClient::new(settings).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let params = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    };
    runtime.block_on(async {
        let first = client.post("customers", &params(&[("name", "Ann")]), "key-1").await.unwrap();
        let again = client.post("customers", &params(&[("name", "Ann")]), "key-1").await.unwrap();
        assert_eq!(first.body["id"], again.body["id"], "a replay, not a second customer");
        assert_eq!(stripe.objects("customers").len(), 1);
        let mismatch = client.post("customers", &params(&[("name", "Bo")]), "key-1").await.unwrap_err();
        assert!(
            matches!(&mismatch, StripeError::Refused { status: 400, message, .. } if message.contains("same parameters")),
            "{mismatch}"
        );

        // The answer is lost to a timeout after Stripe made the customer: the retry, under the same
        // key, meets the first answer again, and no second customer is made.
        stripe.fail_next(1, Fault::Slow(Duration::from_secs(2)));
        let late = client.post("customers", &params(&[("name", "Cy")]), "key-2").await.unwrap();
        let cy: Vec<_> = stripe.objects("customers").into_iter().filter(|c| c["name"] == "Cy").collect();
        assert_eq!(cy.len(), 1);
        assert_eq!(late.body["id"], cy[0]["id"]);
        assert!(stripe.received().iter().all(|r| r.stripe_account.as_deref() == Some("acct_connected_1")));

        for n in 0..250 {
            stripe.insert("charges", serde_json::json!({ "amount": n }), 1_700_000_000 + n);
        }
        let (mut seen, mut after, mut pages) = (Vec::new(), None::<String>, 0);
        loop {
            let mut query = params(&[("limit", "100")]);
            if let Some(id) = &after {
                query.push(("starting_after".into(), id.clone()));
            }
            let page = client.get("charges", &query).await.unwrap().body;
            pages += 1;
            let data = page["data"].as_array().unwrap();
            seen.extend(data.iter().map(|c| c["amount"].as_i64().unwrap()));
            after = data.last().map(|c| c["id"].as_str().unwrap().to_string());
            if !page["has_more"].as_bool().unwrap() {
                break;
            }
        }
        assert_eq!(pages, 3);
        assert_eq!(seen, (0..250).rev().collect::<Vec<_>>(), "newest first, each once");
        let newer = client.get("charges", &params(&[("created[gt]", "1700000239")])).await.unwrap().body;
        assert_eq!(newer["data"].as_array().unwrap().len(), 10);
    });
}

/// The parameter names of a form body (`metadata%5Bsku%5D=a&name=b` → `metadata[sku]`, `name`).
fn param_names(body: &str) -> Vec<String> {
    body.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| pair.split('=').next().unwrap_or_default().replace("%5B", "[").replace("%5D", "]"))
        .collect()
}

/// One object's case of the test below: the CSV of its first import and of its second, the field the
/// second changes and its value then, and parameters the update must leave out.
struct Case {
    object: &'static str,
    first: &'static str,
    second: &'static str,
    field: &'static str,
    value: &'static str,
    left_out: &'static [&'static str],
}

/// Every object the README says the sink writes, created from a file and then updated from a changed
/// file, against a stand-in that refuses (as Stripe does) a parameter an endpoint does not take: no
/// request is refused, an update carries only what Stripe's update takes, and nothing is duplicated.
fn every_supported_object_is_created_then_updated_with_only_what_its_update_takes(b: &Backend) {
    let cases = [
        Case {
            object: "products",
            first: "id,name,description\np1,Mug,Blue\n",
            second: "id,name,description\np1,Mug,Green\n",
            field: "description",
            value: "Green",
            left_out: &["id"],
        },
        Case {
            object: "prices",
            first: "metadata.external_id,product,currency,unit_amount,nickname\npr1,prod_base,usd,1000,Basic\n",
            second: "metadata.external_id,product,currency,unit_amount,nickname\npr1,prod_base,usd,1000,Basic plus\n",
            field: "nickname",
            value: "Basic plus",
            left_out: &["product", "currency", "unit_amount"],
        },
        Case {
            object: "customers",
            first: "metadata.external_id,email,name\nc1,ann@example.com,Ann\n",
            second: "metadata.external_id,email,name\nc1,ann@new.example.com,Ann\n",
            field: "email",
            value: "ann@new.example.com",
            left_out: &[],
        },
        Case {
            object: "coupons",
            first: "metadata.external_id,percent_off,duration,name\nk1,25,once,Quarter off\n",
            second: "metadata.external_id,percent_off,duration,name\nk1,25,once,A quarter off\n",
            field: "name",
            value: "A quarter off",
            left_out: &["percent_off", "duration"],
        },
        Case {
            object: "promotion_codes",
            first: "metadata.external_id,promotion.type,promotion.coupon,code,active\npc1,coupon,SPRING,SPRING25,true\n",
            second: "metadata.external_id,promotion.type,promotion.coupon,code,active\npc1,coupon,SPRING,SPRING25,false\n",
            field: "active",
            value: "false",
            left_out: &["promotion[type]", "promotion[coupon]", "code"],
        },
        Case {
            object: "tax_rates",
            first: "metadata.external_id,display_name,inclusive,percentage\nt1,VAT,false,20\n",
            second: "metadata.external_id,display_name,inclusive,percentage\nt1,VAT Germany,false,20\n",
            field: "display_name",
            value: "VAT Germany",
            left_out: &["inclusive", "percentage"],
        },
        Case {
            object: "shipping_rates",
            first: "metadata.external_id,display_name,fixed_amount.amount,fixed_amount.currency,tax_behavior\ns1,Ground,500,usd,exclusive\n",
            second: "metadata.external_id,display_name,fixed_amount.amount,fixed_amount.currency,tax_behavior\ns1,Ground,500,usd,inclusive\n",
            field: "tax_behavior",
            value: "inclusive",
            left_out: &["display_name", "fixed_amount[amount]", "fixed_amount[currency]"],
        },
        Case {
            object: "subscriptions",
            first: "metadata.external_id,customer,items.0.price,description\nsub1,cus_base,price_base,First\n",
            second: "metadata.external_id,customer,items.0.price,description\nsub1,cus_base,price_base,Renamed\n",
            field: "description",
            value: "Renamed",
            left_out: &["customer", "items[0][price]"],
        },
    ];
    for Case { object, first, second, field, value, left_out } in cases {
        // A database of each case's own: every case is a dataflow `Catalog` from scratch.
        let b = &if b.is_postgres() { Backend::postgres() } else { Backend::sqlite() };
        let stripe = StripeServer::start();
        // What the files refer to.
        stripe.insert("products", serde_json::json!({ "id": "prod_base", "name": "Base" }), 1_700_000_000);
        stripe.insert("prices", serde_json::json!({ "id": "price_base", "currency": "usd" }), 1_700_000_000);
        stripe.insert("customers", serde_json::json!({ "id": "cus_base" }), 1_700_000_000);
        stripe.insert("coupons", serde_json::json!({ "id": "SPRING", "percent_off": "10" }), 1_700_000_000);
        let before = stripe.objects(object).len();
        let dir = catalog(&stripe, object, None, "");
        // The same file twice, changed the second time.
        for (csv, minutes_ago) in [(first, 60), (second, 1)] {
            put(dir.path(), "object.csv", csv, minutes_ago);
            let output = run(b, dir.path(), &["run"]);
            let printed = text(&output.stdout) + &text(&output.stderr);
            assert_eq!(output.status.code(), Some(0), "{object}: {printed}");
            assert!(printed.contains("1 rows, 0 rejected"), "{object}: {printed}");
        }

        assert_eq!(stripe.count(400), 0, "{object}: Stripe refused nothing: {:#?}", stripe.received());
        let objects = stripe.objects(object);
        assert_eq!(objects.len(), before + 1, "{object}: created once, then updated: {objects:#?}");
        let made = objects.last().unwrap();
        let shown = match &made[field] {
            serde_json::Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        assert_eq!(shown, value, "{object}: {made:#}");
        let updates: Vec<_> = stripe
            .received()
            .into_iter()
            .filter(|r| {
                r.method == "POST" && r.path == format!("/v1/{object}/{}", made["id"].as_str().unwrap())
            })
            .collect();
        assert_eq!(updates.len(), 1, "{object}: one update");
        let sent = param_names(&updates[0].body);
        assert!(sent.iter().any(|name| name == field), "{object}: {sent:?}");
        for name in left_out {
            assert!(!sent.iter().any(|sent| sent == name), "{object}: the update sent `{name}`: {sent:?}");
        }
        let actions = b.strings(
            dir.path(),
            "Catalog",
            &format!("SELECT action FROM stripe_{object} ORDER BY _sluice_line, action"),
        );
        assert_eq!(actions, ["created", "updated"], "{object}");
    }
}

fn a_price_whose_amount_changes_is_replaced_and_the_old_one_archived(b: &Backend) {
    let stripe = StripeServer::start();
    stripe.insert("products", serde_json::json!({ "id": "prod_base", "name": "Base" }), 1_700_000_000);
    let dir = catalog(&stripe, "prices", None, "");
    let header = "metadata.external_id,product,currency,unit_amount,nickname\n";
    put(
        dir.path(),
        "prices.csv",
        &format!("{header}basic,prod_base,usd,1000,Basic\npro,prod_base,usd,5000,Pro\n"),
        60,
    );
    assert_eq!(run(b, dir.path(), &["run"]).status.code(), Some(0));
    let first: Vec<String> =
        stripe.objects("prices").iter().map(|p| p["id"].as_str().unwrap().to_string()).collect();

    // Basic costs more now: Stripe cannot change a price's amount, so a new price takes its place.
    put(
        dir.path(),
        "prices.csv",
        &format!("{header}basic,prod_base,usd,1200,Basic\npro,prod_base,usd,5000,Pro\n"),
        1,
    );
    let output = run(b, dir.path(), &["run"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_eq!(stripe.count(400), 0, "{:#?}", stripe.received());
    let prices = stripe.objects("prices");
    assert_eq!(prices.len(), 3, "{prices:#?}");
    let old = prices.iter().find(|p| p["id"] == first[0]).unwrap();
    assert_eq!((old["unit_amount"].as_i64(), old["active"].as_bool()), (Some(1000), Some(false)), "archived");
    let new = &prices[2];
    assert_eq!((new["unit_amount"].as_i64(), new["active"].as_bool()), (Some(1200), Some(true)));
    assert_eq!(new["metadata"]["external_id"], "basic");
    let pro = prices.iter().find(|p| p["id"] == first[1]).unwrap();
    assert_eq!(pro["active"].as_bool(), Some(true), "unchanged, so updated in place");
    let actions = b.strings(
        dir.path(),
        "Catalog",
        "SELECT external_id || ' ' || action || ' ' || stripe_id FROM stripe_prices WHERE _sluice_run = 2 ORDER BY external_id",
    );
    assert_eq!(
        actions,
        [format!("basic replaced {}", new["id"].as_str().unwrap()), format!("pro updated {}", first[1])]
    );

    // The external id now means the new price: a later change of its nickname updates that one.
    put(dir.path(), "prices.csv", &format!("{header}basic,prod_base,usd,1200,Basic 2027\n"), 0);
    assert_eq!(run(b, dir.path(), &["run"]).status.code(), Some(0));
    let prices = stripe.objects("prices");
    assert_eq!(prices.len(), 3);
    assert_eq!(
        (prices[2]["nickname"].as_str(), prices[0]["nickname"].as_str()),
        (Some("Basic 2027"), Some("Basic"))
    );
}

#[test]
fn a_coupon_whose_percent_off_changes_is_refused_naming_it_and_the_others_update() {
    let b = &Backend::sqlite();
    let stripe = StripeServer::start();
    let dir = catalog(&stripe, "coupons", None, "");
    let header = "metadata.external_id,percent_off,duration,name\n";
    put(dir.path(), "coupons.csv", &format!("{header}k1,25,once,Quarter\nk2,10,forever,Tenth\n"), 60);
    assert_eq!(run(b, dir.path(), &["run"]).status.code(), Some(0));
    put(dir.path(), "coupons.csv", &format!("{header}k1,30,once,Quarter\nk2,10,forever,A tenth\n"), 1);
    let output = run(b, dir.path(), &["run"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(text(&output.stdout).contains("1 rows, 1 rejected"), "{}", text(&output.stdout));
    assert_eq!(stripe.count(400), 0, "nothing Stripe would refuse was sent");
    let coupons = stripe.objects("coupons");
    assert_eq!(coupons.len(), 2);
    assert_eq!(
        (coupons[0]["percent_off"].as_str(), coupons[1]["name"].as_str()),
        (Some("25"), Some("A tenth"))
    );
    let rejects = b.strings(dir.path(), "Catalog", "SELECT line || ' ' || reason FROM _sluice_rejects");
    assert_eq!(rejects.len(), 1, "{rejects:?}");
    assert!(
        rejects[0].starts_with("2 coupons `k1` was imported before with other values of what Stripe takes on create only: `percent_off` (25 ─► 30)"),
        "{}",
        rejects[0]
    );
}

#[test]
fn records_stripe_would_refuse_are_rejected_before_sending_and_preview_shows_them_as_run_does() {
    let b = &Backend::sqlite();
    let stripe = StripeServer::start();
    let dir = catalog(&stripe, "tax_rates", None, "");
    put(
        dir.path(),
        "rates.csv",
        "metadata.external_id,display_name,inclusive,percentage,tax_type\n\
         t1,VAT,false,20,vat\nt2,Sales tax,false,,sales_tax\nt3,GST,maybe,5,gst\nt4,Fee,false,1,fee\n,No id,false,1,vat\n",
        60,
    );
    let reasons = [
        "3 Stripe needs `percentage` to create tax_rates",
        "4 `inclusive` is `maybe`, and Stripe takes one of: true, false",
        "5 `tax_type` is `fee`, and Stripe takes one of: amusement_tax,",
        "6 field `metadata.external_id` is empty",
    ];
    let preview = run(b, dir.path(), &["preview", "Catalog"]);
    let shown = text(&preview.stdout);
    assert!(shown.contains("\"display_name\":\"VAT\"") && !shown.contains("Sales tax\""), "{shown}");
    for reason in reasons {
        let (line, reason) = reason.split_once(' ').unwrap();
        assert!(shown.contains(&format!("rejected: line {line}: {reason}")), "{shown}");
    }
    assert!(stripe.received().is_empty(), "a preview sends nothing");

    let output = run(b, dir.path(), &["run"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(text(&output.stdout).contains("1 rows, 4 rejected"), "{}", text(&output.stdout));
    assert_eq!(stripe.received().len(), 1, "only the record Stripe would take was sent");
    let rejects =
        b.strings(dir.path(), "Catalog", "SELECT line || ' ' || reason FROM _sluice_rejects ORDER BY line");
    for (reject, reason) in rejects.iter().zip(reasons) {
        assert!(reject.starts_with(reason), "{reject}");
    }
}

#[test]
fn an_object_whose_every_record_stripe_refuses_fails_the_run_naming_the_cause() {
    let b = &Backend::sqlite();
    let stripe = StripeServer::start();
    let dir = catalog(&stripe, "coupons", None, "");
    put(dir.path(), "coupons.csv", "metadata.external_id,amount_off,currency\nk1,500,xyz\nk2,700,xyz\n", 60);
    put(dir.path(), "more.csv", "metadata.external_id,amount_off,currency\nk3,500,usd\n", 50);
    let output = run(b, dir.path(), &["run"]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stdout));
    assert!(
        text(&output.stdout).contains("Catalog: partial — 2 objects, 1 rows, 0 rejected"),
        "{}",
        text(&output.stdout)
    );
    assert_eq!(stripe.objects("coupons").len(), 1);
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("writing `coupons` to Stripe failed: every record was refused (2 of them), none landed; the first, line 2: Stripe refused the create of coupons `k1`"),
        "{stderr}"
    );
}

#[test]
fn configuration_checks_name_an_unknown_object_and_a_mapping_that_cannot_make_one() {
    let stripe = StripeServer::start();
    let tax_template = |fields: &str| {
        format!(
            "plugin = \"map\"\n[dataflows.Catalog.template.options.fields]\n\"metadata.external_id\" = \"no\"\n{fields}"
        )
    };
    let cases = [
        (
            "invoices",
            None,
            "Sluice does not write `invoices` to Stripe: it knows the parameters and requirements of products, prices, customers, coupons, promotion_codes, tax_rates, shipping_rates, subscriptions only",
        ),
        (
            "tax_rates",
            Some(tax_template("display_name = \"name\"\ninclusive = \"inclusive\"\n")),
            "Stripe needs `percentage` to create tax_rates, and no field makes it: map it",
        ),
        (
            "coupons",
            Some(tax_template("percent_off = \"p\"\ncolour = \"c\"\n")),
            "field `colour` is not a parameter of coupons (the parameters are on https://docs.stripe.com/api/coupons/create)",
        ),
        (
            "customers",
            Some(
                "plugin = \"map\"\n[dataflows.Catalog.template.options.fields]\nemail = \"email\"\n"
                    .to_string(),
            ),
            "no field makes `metadata.external_id`, which Sluice knows each customers again by",
        ),
    ];
    for (object, template, expected) in cases {
        let dir = catalog(&stripe, object, template.as_deref(), "");
        let output = run(&Backend::sqlite(), dir.path(), &["check"]);
        assert_eq!(output.status.code(), Some(2), "{object}: {}", text(&output.stderr));
        assert!(text(&output.stderr).contains(expected), "{object}: {}", text(&output.stderr));
    }
}

#[test]
fn an_unreachable_stripe_fails_the_run_within_seconds_whatever_the_rows() {
    let b = &Backend::sqlite();
    // A port on loopback where nothing listens.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    std::fs::write(
        dir.path().join("connector.toml"),
        format!(
            "{DATABASES}[dataflows.Catalog]\nsource = {{ type = \"local\", path = \"data\" }}\nformat = {{ plugin = \"csv\" }}\n\
             sink = {{ type = \"stripe\", object = \"products\", api_key = \"${{TEST_STRIPE_KEY}}\", api_base = \"http://127.0.0.1:{port}\" }}\n"
        ),
    )
    .unwrap();
    let rows: String = (0..1000).map(|i| format!("p{i},Product {i}\n")).collect();
    put(dir.path(), "a.csv", &format!("id,name\n{rows}"), 60);
    let started = Instant::now();
    let output = run(b, dir.path(), &["run"]);
    let took = started.elapsed();
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stdout));
    assert!(took < Duration::from_secs(20), "1,000 rows, one request's retries: {took:?}");
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("writing `products` to Stripe failed: Stripe did not answer after 3 attempts"),
        "{stderr}"
    );
}

#[test]
fn a_key_a_server_echoes_back_is_never_printed_logged_or_kept() {
    let b = &Backend::sqlite();
    let stripe = StripeServer::start_with(Settings { echo_key: true, ..Settings::default() });
    for key in ["wrong_key", "sk_live_51ThisLooksLikeALiveKey"] {
        let dir = catalog(&stripe, "products", None, "");
        put(dir.path(), "a.csv", "id,name\np1,One\n", 60);
        let output = sluice(b, dir.path(), key)
            .env("SLUICE_LOG", "debug")
            .args(["--log-format", "json", "run"])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(1));
        let history = text(&run(b, dir.path(), &["history", "Catalog", "--json"]).stdout);
        let stored = b.state_strings(dir.path(), "SELECT coalesce(error, '') FROM runs").join("\n");
        let everything = format!("{}{}{history}{stored}", text(&output.stdout), text(&output.stderr));
        assert!(
            everything.contains("Authorization was 'Bearer "),
            "the server's message is kept: {everything}"
        );
        assert!(!everything.contains(key), "{key} leaked: {everything}");
        assert!(everything.contains("[redacted]"), "{everything}");
    }
}

/// Prices whose tier the mapping takes only as `tiers`.
fn prices_template(tiers: &str) -> String {
    format!(
        r#"plugin = "map"
options.object = "prices"
[dataflows.Catalog.template.options.fields]
"metadata.external_id" = "code"
product = "product"
currency = "currency"
unit_amount = {{ column = "cents", type = "integer" }}
"metadata.tier" = {{ column = "tier", type = "enum", values = [{tiers}] }}
"#
    )
}

fn rejects_replayed_after_the_mapping_and_stripe_are_fixed_land_once_and_leave_the_rejects(b: &Backend) {
    let stripe = StripeServer::start();
    stripe.insert("products", serde_json::json!({ "id": "mug", "name": "Mug" }), 1_700_000_000);
    let dir = catalog(&stripe, "prices", Some(&prices_template(r#""basic""#)), "");
    // p2's product is not in Stripe yet (Stripe refuses it); p3's tier the mapping does not take (the
    // template refuses it).
    put(
        dir.path(),
        "prices.csv",
        "code,product,currency,cents,tier\np1,mug,usd,1250,basic\np2,lamp,usd,900,basic\np3,mug,usd,1500,premium\n",
        60,
    );
    let output = run(b, dir.path(), &["run"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(text(&output.stdout).contains("1 rows, 2 rejected"), "{}", text(&output.stdout));
    let listed = |args: &[&str]| -> Vec<serde_json::Value> {
        let output = run(b, dir.path(), &[&["rejects", "Catalog", "--json"], args].concat());
        assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
        serde_json::from_slice(&output.stdout).unwrap()
    };
    let before = listed(&[]);
    let stages: Vec<_> = before.iter().map(|r| (r["line"].as_u64().unwrap(), r["stage"].clone())).collect();
    assert_eq!(stages, [(3, serde_json::json!("sink")), (4, serde_json::json!("template"))]);

    // Fixed: the mapping takes premium, and the product is made in Stripe.
    let config = dir.path().join("connector.toml");
    let settings = std::fs::read_to_string(&config).unwrap();
    let fixed = settings.replace(&prices_template(r#""basic""#), &prices_template(r#""basic", "premium""#));
    assert_ne!(settings, fixed);
    std::fs::write(&config, fixed).unwrap();
    stripe.insert("products", serde_json::json!({ "id": "lamp", "name": "Lamp" }), 1_700_000_000);

    let output = run(b, dir.path(), &["run", "Catalog", "--replay-rejects"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(
        text(&output.stdout).contains(
            "Catalog: replay succeeded — 2 rows tried again from 1 objects: 2 went through, 0 rejected again"
        ),
        "{}",
        text(&output.stdout)
    );
    let prices = stripe.objects("prices");
    let mut codes: Vec<&str> =
        prices.iter().map(|p| p["metadata"]["external_id"].as_str().unwrap()).collect();
    codes.sort();
    assert_eq!(codes, ["p1", "p2", "p3"], "each price once: {prices:#?}");
    let p3 = prices.iter().find(|p| p["metadata"]["external_id"] == "p3").unwrap();
    assert_eq!((p3["unit_amount"].as_i64(), p3["metadata"]["tier"].as_str()), (Some(1500), Some("premium")));
    // p2 went again under a key of the replay's own: the key of its refused create would have met
    // Stripe's replay of that refusal.
    let keys: Vec<String> = stripe
        .received()
        .into_iter()
        .filter(|r| r.path == "/v1/prices" && r.body.contains("p2"))
        .filter_map(|r| r.idempotency_key)
        .collect();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert_ne!(keys[0], keys[1]);
    assert!(listed(&[]).is_empty(), "the rows that went through left the rejects");
    let results = b.strings(
        dir.path(),
        "Catalog",
        "SELECT external_id || '|' || action || '|' || _sluice_object || '|' || _sluice_line FROM stripe_prices ORDER BY _sluice_line",
    );
    assert_eq!(results, ["p1|created|prices.csv|2", "p2|created|prices.csv|3", "p3|created|prices.csv|4"]);

    // Nothing left to replay: nothing is sent.
    let sent = stripe.received().len();
    let output = run(b, dir.path(), &["run", "Catalog", "--replay-rejects"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(text(&output.stdout).contains("0 rows tried again"), "{}", text(&output.stdout));
    assert_eq!(stripe.received().len(), sent);
}

#[test]
fn a_diff_shows_what_a_run_would_create_update_field_by_field_and_leave_unchanged_writing_nothing() {
    let stripe = StripeServer::start();
    let b = &Backend::sqlite();
    // Stripe holds two of the file's products already: one as the file has it, one under an older name.
    stripe.insert(
        "products",
        serde_json::json!({ "id": "mug", "name": "Mug", "metadata": { "sku": "mug" } }),
        1_700_000_000,
    );
    stripe.insert("products", serde_json::json!({ "id": "poster", "name": "Old Poster" }), 1_700_000_000);
    let dir = catalog(&stripe, "products", Some(PRODUCTS_TEMPLATE), "");
    put(
        dir.path(),
        "products.csv",
        "sku,title,price,currency\nmug,Mug,12.50,usd\nposter,Poster & Frame,15.00,usd\nkettle,Kettle,30.00,usd\nlamp,Lamp,-1,usd\n",
        60,
    );
    let output = run(b, dir.path(), &["preview", "Catalog", "--diff"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let table = text(&output.stdout);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(
        lines[0],
        "Catalog: the next run into Stripe products: 1 to create, 1 to update, 1 unchanged, 1 rejected",
        "{table}"
    );
    let words = |line: &str| line.split_whitespace().map(str::to_string).collect::<Vec<_>>();
    assert_eq!(words(lines[2]), ["unchanged", "products.csv", "2", "mug", "mug"], "{table}");
    assert_eq!(words(lines[3]), ["update", "products.csv", "3", "poster", "poster"], "{table}");
    assert_eq!(lines[4].trim(), "metadata[sku]: (unset) ─► poster", "{table}");
    assert_eq!(lines[5].trim(), "name: Old Poster ─► Poster & Frame", "{table}");
    assert_eq!(words(lines[6]), ["create", "products.csv", "4", "kettle", "-"], "{table}");
    assert!(
        lines[7].starts_with("rejected   products.csv line 5: field `default_price_data.unit_amount`"),
        "{table}"
    );
    // Read from Stripe, nothing written there or here.
    let received = stripe.received();
    assert!(
        received.iter().all(|r| r.method == "GET"),
        "{:?}",
        received.iter().map(|r| (&r.method, &r.path)).collect::<Vec<_>>()
    );
    assert_eq!(received.len(), 3, "one read per record Stripe may hold");
    assert_eq!(stripe.objects("products").len(), 2);
    assert!(b.try_strings(dir.path(), "Catalog", "SELECT count(*) FROM stripe_products").is_err());

    // The same as JSON.
    let output = run(b, dir.path(), &["preview", "Catalog", "--diff", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["records"][1]["action"], "update");
    assert_eq!(
        json["records"][1]["changes"][1],
        serde_json::json!({ "field": "name", "old": "Old Poster", "new": "Poster & Frame", "create_only": false })
    );

    // After the run, nothing is left to change; a new price is a change Stripe takes on create only.
    assert_eq!(run(b, dir.path(), &["run"]).status.code(), Some(0));
    put(
        dir.path(),
        "products.csv",
        "sku,title,price,currency\nmug,Mug,12.50,usd\nposter,Poster & Frame,15.00,usd\nkettle,Kettle,35.00,usd\n",
        1,
    );
    let output = run(b, dir.path(), &["preview", "Catalog", "--diff"]);
    let table = text(&output.stdout);
    assert!(
        table
            .starts_with("Catalog: the next run into Stripe products: 0 to create, 1 to update, 2 unchanged"),
        "{table}"
    );
    assert!(
        table.contains(
            "default_price_data[unit_amount]: 3000 ─► 3500  (create only: the run replaces or refuses)"
        ),
        "{table}"
    );
}

#[test]
fn a_diff_knows_objects_stripe_names_by_the_external_id_the_results_table_holds() {
    let stripe = StripeServer::start();
    let b = &Backend::sqlite();
    let dir = catalog(&stripe, "customers", Some(CUSTOMERS_TEMPLATE), "");
    put(
        dir.path(),
        "customers.csv",
        "customer_no,email,name\nc1,ann@example.com,Ann\nc2,bo@example.com,Bo\n",
        60,
    );
    assert_eq!(run(b, dir.path(), &["run"]).status.code(), Some(0));
    let ann = stripe.objects("customers").into_iter().find(|c| c["metadata"]["external_id"] == "c1").unwrap();
    put(
        dir.path(),
        "more.csv",
        "customer_no,email,name\nc1,ann@new.example.com,Ann\nc2,bo@example.com,Bo\nc3,cy@example.com,Cy\n",
        1,
    );
    let sent = stripe.received().len();
    let output = run(b, dir.path(), &["preview", "Catalog", "--diff", "--json"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let diff: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let records = diff["records"].as_array().unwrap();
    let seen: Vec<_> =
        records.iter().map(|r| (r["external_id"].as_str().unwrap(), r["action"].as_str().unwrap())).collect();
    assert_eq!(seen, [("c1", "update"), ("c2", "unchanged"), ("c3", "create")]);
    assert_eq!(records[0]["stripe_id"], ann["id"], "known by the Stripe id its first import got");
    assert_eq!(
        records[0]["changes"],
        serde_json::json!([{ "field": "email", "old": "ann@example.com", "new": "ann@new.example.com", "create_only": false }])
    );
    let reads = &stripe.received()[sent..];
    assert_eq!(reads.len(), 2, "c3 has no Stripe id to read");
    assert!(
        reads.iter().all(|r| r.method == "GET" && r.path.starts_with("/v1/customers/cus_")),
        "{:?}",
        reads.iter().map(|r| &r.path).collect::<Vec<_>>()
    );
}
