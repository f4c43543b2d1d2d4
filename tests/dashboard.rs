//! The dashboard in real headless Chromium (Debian's `chromium`, driven by playwright-core from
//! `tests/browser`; `.ci/run` installs both), in a 1280 px window: the dataflow list renders with the
//! product's columns, Run starts a run whose status then shows, Rollback and Remove take effect; a
//! dataflow's page shows its runs as a chart (a failed run marked), a run's objects (opened from the
//! keyboard), its rejected rows and a replay, the next run's preview, its configuration with secrets masked,
//! and for a Stripe sink what its next run would change there. No view is wider than the window. The list
//! and a dataflow's page are saved as `target/dashboard.png` and `target/dashboard-dataflow.png` (the
//! README's screenshots are of these).

mod support;

use serde_json::Value;
use sluice_testkit::stripe::{StripeServer, TEST_KEY};
use std::path::Path;
use std::process::Command;
use support::daemon::{Daemon, daemon_section, free_port};

/// The width of a PNG image, from its header.
fn png_width(path: &Path) -> u32 {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[1..4], b"PNG", "{}", path.display());
    u32::from_be_bytes(bytes[16..20].try_into().unwrap())
}

const CHROMIUM: &str = "/usr/bin/chromium";

fn require_browser(browser_dir: &Path) {
    assert!(
        Path::new(CHROMIUM).exists() && browser_dir.join("node_modules/playwright-core").exists(),
        "this test needs Chromium at {CHROMIUM} (apt-get install chromium) and tests/browser's node modules \
         (npm ci --prefix tests/browser); .ci/run installs both"
    );
}

#[test]
fn the_dashboard_lists_runs_and_shows_a_failed_runs_error_in_chromium() {
    let browser_dir = support::root().join("tests/browser");
    require_browser(&browser_dir);
    let port = free_port();
    let dir = support::example();
    let manual = |name: &str, display: &str, source: &str, format: &str| {
        format!(
            "[dataflows.{name}]\ndisplay_name = \"{display}\"\nschedule = \"manual\"\nsource = {source}\nformat = {format}\n\n"
        )
    };
    let dataflows = [
        manual(
            "Orders",
            "Shop orders",
            "{ type = \"local\", path = \"examples/data\", prefix = \"orders/\" }",
            "{ plugin = \"csv\" }",
        ),
        manual(
            "Customers",
            "Customers",
            "{ type = \"local\", path = \"examples/data\", prefix = \"customers/\" }",
            "{ plugin = \"jsonl\" }",
        ),
        manual(
            "Products",
            "Product catalogue",
            "{ type = \"local\", path = \"examples/data\", prefix = \"products/\" }",
            "{ plugin = \"json\", options = { pointer = \"/data\" } }",
        ),
        manual(
            "Broken",
            "Exports not there",
            "{ type = \"local\", path = \"exports-not-mounted\" }",
            "{ plugin = \"csv\" }",
        ),
    ];
    // Products into the Stripe stand-in, which holds one of them under an older name; its key written
    // into the file, for the page to mask.
    let stripe = StripeServer::start();
    stripe.insert("products", serde_json::json!({ "id": "mug", "name": "Mug" }), 1_700_000_000);
    std::fs::create_dir_all(dir.path().join("catalog")).unwrap();
    std::fs::write(dir.path().join("catalog/products.csv"), "id,name\nmug,Big Mug\nkettle,Kettle\n").unwrap();
    let catalog = format!(
        "{}[dataflows.Catalog.sink]\ntype = \"stripe\"\nobject = \"products\"\napi_key = \"{TEST_KEY}\"\napi_base = \"{}\"\n",
        manual("Catalog", "Catalog", "{ type = \"local\", path = \"catalog\" }", "{ plugin = \"csv\" }"),
        stripe.url()
    );
    std::fs::write(
        dir.path().join("connector.toml"),
        format!("{}{}{catalog}", daemon_section(port, ""), dataflows.concat()),
    )
    .unwrap();
    let daemon = Daemon::start(dir.path(), port);
    for name in ["Customers", "Products"] {
        daemon.run(name);
        daemon.wait_for_run_end(name, 0);
    }

    let screenshot = support::root().join("target/dashboard.png");
    let page_screenshot = support::root().join("target/dashboard-dataflow.png");
    let output = Command::new("node")
        .current_dir(&browser_dir)
        .arg("dashboard.mjs")
        .arg(daemon.url("/"))
        .arg(&screenshot)
        .arg(&page_screenshot)
        .env("CHROMIUM", CHROMIUM)
        .output()
        .expect("running node");
    assert!(
        output.status.success(),
        "{}\n{}\ndaemon log:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        daemon.log_text()
    );
    let seen: Value = serde_json::from_slice(&output.stdout).unwrap();
    let headers: Vec<&str> =
        seen["headers"].as_array().unwrap().iter().map(|h| h.as_str().unwrap()).collect();
    for column in ["Name", "Type", "Status", "Tables Count", "Created", "Updated", "Last Refresh", "Actions"]
    {
        assert!(headers.contains(&column), "{column} in {headers:?}");
    }
    assert_eq!(seen["names"], serde_json::json!(["Broken", "Catalog", "Customers", "Orders", "Products"]));
    assert_eq!(seen["statusBefore"], "never run");
    assert_eq!(seen["ordersTables"], "1", "the run made Orders' table");
    assert_eq!(seen["productsTables"], "0", "Remove deleted Products' table");
    assert_eq!(daemon.runs("Customers")[0]["status"], "rolled back");
    assert_eq!(seen["historyStatus"], "failed");
    // The load, before the replay the page started.
    let orders_run = daemon.runs("Orders").last().unwrap()["run"].to_string();
    assert_eq!(
        seen["rejected"],
        serde_json::json!([[
            orders_run,
            "orders",
            "orders/orders-2026-11.csv",
            "5",
            "parse",
            "expected 7 fields, found 5",
            "1004,Edsger Dijkstra,edsger@example.com,19.99,usd"
        ]]),
        "Orders' rejected row in its Run History"
    );
    assert_eq!(
        seen["replayed"],
        "Orders: replay succeeded: 0 of 0 rows went through, 0 rejected again; 1 left, which only a new read of their files mends",
        "the parser's reject is left by a replay"
    );
    let error = seen["error"].as_str().unwrap();
    assert!(error.contains("exports-not-mounted"), "the failed run's error: {error}");
    assert!(
        seen["groups"].as_array().unwrap().iter().any(|g| g.as_str().unwrap().starts_with("failed")),
        "{seen}"
    );
    // What the browser saw is what the API holds.
    assert_eq!(daemon.runs("Broken")[0]["error"].as_str().unwrap(), error);
    assert!(std::fs::metadata(&screenshot).unwrap().len() > 10_000, "a screenshot of the page");

    // The dataflow's page: its address, the chart (a bar per run, the failed one marked), the run's objects
    // opened from the keyboard, the preview, and the configuration as written.
    assert_eq!(seen["address"], "#/dataflows/Orders");
    assert_eq!(seen["bars"], serde_json::json!(["succeeded"]), "one bar, for Orders' one run then");
    assert_eq!(seen["failedMarks"], serde_json::json!(["✕"]), "Broken's failed run is marked");
    let objects = seen["objects"].as_array().unwrap();
    assert_eq!(objects.len(), 2, "{objects:?}");
    let november = objects.iter().find(|o| o[0] == "orders/orders-2026-11.csv").expect("{objects:?}");
    assert_eq!((november[1].as_str(), november[3].as_str()), (Some("loaded"), Some("1")), "{objects:?}");
    let preview = seen["preview"].as_array().unwrap();
    assert!(preview.iter().all(|p| p[1] == "already imported"), "{preview:?}");
    assert!(seen["previewRecords"].as_str().unwrap().starts_with("First records of orders/"), "{seen}");
    let config = seen["config"].as_str().unwrap();
    assert!(config.contains("[dataflows.Orders]") && config.contains("prefix = \"orders/\""), "{config}");
    let catalog_config = seen["catalogConfig"].as_str().unwrap();
    assert!(
        !catalog_config.contains(TEST_KEY) && catalog_config.contains("api_key = \"••••••\""),
        "{catalog_config}"
    );
    // The diff of Catalog's next run: mug renamed, kettle made.
    let diff = seen["diff"].as_array().unwrap();
    assert_eq!(diff[0][0], "update");
    assert_eq!(diff[0][5], "name: Mug ─► Big Mug");
    assert_eq!((diff[1][0].as_str(), diff[1][3].as_str()), (Some("create"), Some("kettle")));
    assert!(stripe.received().iter().all(|r| r.method == "GET"), "the diff wrote nothing to Stripe");
    // Every view fits a 1280 px window: nothing sticks out, and the full-page screenshots are 1280 wide.
    for view in ["list", "page", "diff"] {
        let layout = &seen["layout"][view];
        assert_eq!(layout["scrollWidth"], 1280, "{view}: {layout}");
        assert_eq!(layout["over"], serde_json::json!([]), "{view}: {layout}");
    }
    assert_eq!(png_width(&screenshot), 1280);
    assert_eq!(png_width(&page_screenshot), 1280);
}
