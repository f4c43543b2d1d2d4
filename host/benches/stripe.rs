//! Sustained write rate into Stripe: products from a CSV in a local folder, through the `map` template,
//! created in the Stripe stand-in (over loopback HTTP) whose token bucket allows `--rate` requests a second.
//! The baseline is that allowed rate itself: the bench reports the rate Sluice sustained between the first
//! and the last request as a ratio to it, and the requests the stand-in refused for rate (goal: none).
//!
//! ```sh
//! cargo bench --bench stripe                                  # 20,000 products at 100 requests/s (~3.5 min)
//! cargo bench --bench stripe -- --products 2000 --rate 100    # quicker
//! ```

#[path = "support/args.rs"]
mod args;

use args::number_flag;
use sluice::config::Config;
use sluice::plugin::{HostSettings, PluginHost};
use sluice::state::RunStatus;
use sluice::sync::{Quiet, Runner};
use sluice_testkit::stripe::{Settings, StripeServer, TEST_KEY};
use std::fmt::Write as _;
use std::time::Instant;

fn main() {
    let products: usize = number_flag("--products", 20_000);
    let rate: u32 = number_flag("--rate", 100);

    let stripe =
        StripeServer::start_with(Settings { rate_limit: Some(rate), burst: 10, ..Settings::default() });
    let dir = tempfile::tempdir().expect("a folder for the bench");
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    let mut csv = String::from("sku,title,price,currency\n");
    for n in 0..products {
        writeln!(csv, "sku-{n:06},Product {n},{}.{:02},usd", 1 + n % 500, n % 100).unwrap();
    }
    std::fs::write(dir.path().join("data/products.csv"), csv).unwrap();
    let config_path = dir.path().join("connector.toml");
    std::fs::write(
        &config_path,
        format!(
            r#"[dataflows.Catalog]
source = {{ type = "local", path = "data" }}
format = {{ plugin = "csv" }}
sink = {{ type = "stripe", object = "products", api_key = "{TEST_KEY}", api_base = "{}", rate_limit = {rate} }}

[dataflows.Catalog.template]
plugin = "map"
options.object = "products"
[dataflows.Catalog.template.options.fields]
id = "sku"
name = "title"
"metadata.sku" = "sku"
"default_price_data.currency" = {{ column = "currency", type = "currency" }}
"default_price_data.unit_amount" = {{ column = "price", type = "amount", currency_column = "currency" }}
"#,
            stripe.url()
        ),
    )
    .expect("the bench configuration is written");
    let config = Config::load(&config_path).expect("the bench configuration reads");
    let host = PluginHost::new(HostSettings::default()).expect("plugin host");
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    // Compile the plugins outside the timing, as a daemon does at start.
    Runner::new(&config, &host, runtime.handle().clone()).preview("Catalog", 1).expect("the preview runs");

    let started = Instant::now();
    let report =
        Runner::new(&config, &host, runtime.handle().clone()).run("Catalog", &Quiet).expect("the run");
    let elapsed = started.elapsed();
    assert_eq!(report.status, RunStatus::Succeeded, "{:?}", report.error);
    assert_eq!(report.counts.rows, products as u64);

    let received = stripe.received();
    let refused_for_rate = received.iter().filter(|r| r.status == 429).count();
    let span = received.last().unwrap().at - received.first().unwrap().at;
    let sustained = (received.len() - 1) as f64 / span.as_secs_f64();
    println!("products: {products}; the stand-in allows {rate} requests/s (bucket of 10)");
    println!("requests: {}, of them refused for rate: {refused_for_rate}", received.len());
    println!("run: {:.1} s; first to last request: {:.1} s", elapsed.as_secs_f64(), span.as_secs_f64());
    println!(
        "sustained: {sustained:.2} requests/s = {:.3} of the allowed rate (goal: at least 0.95, none refused)",
        sustained / f64::from(rate)
    );
    println!("most requests in flight at once: {}", stripe.max_in_flight());
}
