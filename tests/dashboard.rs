//! The dashboard in real headless Chromium (Debian's `chromium`, driven by playwright-core from
//! `tests/browser`; `.ci/run` installs both): the dataflow list renders with the product's columns, Run
//! starts a run whose status then shows, Rollback and Remove take effect, and Run History shows a failed
//! run's error. The page it saw is
//! saved as `target/dashboard.png` (the README's screenshot is one of these).

mod support;

use serde_json::Value;
use std::path::Path;
use std::process::Command;
use support::daemon::{Daemon, daemon_section, free_port};

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
    std::fs::write(
        dir.path().join("connector.toml"),
        format!("{}{}", daemon_section(port, ""), dataflows.concat()),
    )
    .unwrap();
    let daemon = Daemon::start(dir.path(), port);
    for name in ["Customers", "Products"] {
        daemon.run(name);
        daemon.wait_for_run_end(name, 0);
    }

    let screenshot = support::root().join("target/dashboard.png");
    let output = Command::new("node")
        .current_dir(&browser_dir)
        .arg("dashboard.mjs")
        .arg(daemon.url("/"))
        .arg(&screenshot)
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
    assert_eq!(seen["names"], serde_json::json!(["Broken", "Customers", "Orders", "Products"]));
    assert_eq!(seen["statusBefore"], "never run");
    assert_eq!(seen["ordersTables"], "1", "the run made Orders' table");
    assert_eq!(seen["productsTables"], "0", "Remove deleted Products' table");
    assert_eq!(daemon.runs("Customers")[0]["status"], "rolled back");
    assert_eq!(seen["historyStatus"], "failed");
    let orders_run = daemon.runs("Orders")[0]["run"].to_string();
    assert_eq!(
        seen["rejected"],
        serde_json::json!([[
            orders_run,
            "orders",
            "orders/orders-2026-11.csv",
            "5",
            "expected 7 fields, found 5",
            "1004,Edsger Dijkstra,edsger@example.com,19.99,usd"
        ]]),
        "Orders' rejected row in its Run History"
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
}
