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
    a_products_csv_becomes_stripe_products_and_a_changed_file_updates_them_without_duplicates,
    rows_stripe_refuses_are_rejected_with_its_message_and_request_id_and_the_others_land,
    customers_are_known_again_by_their_external_id_and_updated_not_duplicated,
    a_run_killed_mid_import_is_resumed_with_every_object_created_once,
);

fn sluice(b: &Backend, dir: &Path, key: &str) -> Command {
    let mut command = b.command(dir);
    command.env("TEST_STRIPE_KEY", key).env("RUST_LOG", "debug");
    command
}

fn run(b: &Backend, dir: &Path, args: &[&str]) -> Output {
    sluice(b, dir, TEST_KEY).args(args).output().expect("running sluice")
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
        rejects[0].starts_with("3 Stripe refused products `b`: Invalid currency: xyz.")
            && rejects[0].contains("request req_"),
        "{}",
        rejects[0]
    );
    assert!(
        rejects[1]
            .starts_with("4 Stripe refused products `c`: This value must be greater than or equal to 0.")
            && rejects[1].contains("param default_price_data[unit_amount]"),
        "{}",
        rejects[1]
    );
    assert!(rejects[2].starts_with("6 field `id` is empty"), "{}", rejects[2]);
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

    // Stripe says a 429 must not be retried: the row is refused with its message, the rest go on.
    stripe.fail_next(1, Fault::RateLimited { should_retry: Some(false) });
    put(dir.path(), "more.csv", "id,name\nq1,One\n", 1);
    let output = run(b, dir.path(), &["run"]);
    assert!(text(&output.stdout).contains("0 rows, 1 rejected"), "{}", text(&output.stdout));
    assert_eq!(stripe.count(429), 1);
}

fn customers_are_known_again_by_their_external_id_and_updated_not_duplicated(b: &Backend) {
    let stripe = StripeServer::start();
    let template = r#"plugin = "map"
options.object = "customers"
[dataflows.Catalog.template.options.fields]
"metadata.external_id" = "customer_no"
email = "email"
name = "name"
"#;
    let dir = catalog(&stripe, "customers", Some(template), "");
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
