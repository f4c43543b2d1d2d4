//! Data templates: the bundled `map` template turning file rows into target records (conversions,
//! nested fields, constants, defaults, rejects naming field, column and reason), `sluice preview` showing
//! templated records, bad template options, and a custom template component named by path.

mod support;

use std::path::Path;
use std::process::Output;
use support::backend::{Backend, DATABASES};

fn run(dir: &Path, args: &[&str]) -> Output {
    Backend::sqlite().command(dir).args(args).output().expect("running sluice")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

const PRODUCTS_CSV: &str = "\
sku,title,price,currency,active,launched,tier
sku-1,Mug,12.50,usd,yes,2026-01-15,basic
sku-2,Poster,1500,jpy,no,2026-02-01T10:00:00Z,premium
sku-3,Kettle,-3.00,usd,yes,2026-03-01,basic
sku-4,,9.99,usd,yes,2026-03-02,basic
sku-5,Lamp,19.999,usd,true,2026-03-03,basic
sku-6,Chair,45,xyz,true,2026-03-04,basic
sku-7,Desk,120.00,eur,,1767225600,gold
";

/// A folder with `products.csv` and a dataflow `Catalog` that maps it through `template`.
fn catalog(template: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    std::fs::write(dir.path().join("data/products.csv"), PRODUCTS_CSV).unwrap();
    let config = format!(
        "{DATABASES}[dataflows.Catalog]\nsource = {{ type = \"local\", path = \"data\" }}\nformat = {{ plugin = \"csv\" }}\nsink = {{ table = \"products\" }}\n\n{template}"
    );
    std::fs::write(dir.path().join("connector.toml"), config).unwrap();
    dir
}

const MAP: &str = r#"
[dataflows.Catalog.template]
plugin = "map"
options.object = "products"
[dataflows.Catalog.template.options.fields]
id = "sku"
name = "title"
active = { column = "active", type = "boolean", default = true }
"metadata.sku" = "sku"
"metadata.source" = { value = "s3-import" }
"metadata.launched" = { column = "launched", type = "timestamp" }
"metadata.tier" = { column = "tier", type = "enum", values = ["basic", "premium"] }
"default_price_data.currency" = { column = "currency", type = "currency" }
"default_price_data.unit_amount" = { column = "price", type = "amount", currency_column = "currency" }
"#;

fn rows(dir: &Path, sql: &str) -> Vec<String> {
    Backend::sqlite().strings(dir, "Catalog", sql)
}

#[test]
fn the_map_template_converts_nests_and_rejects_rows_that_do_not_fit_naming_field_column_and_reason() {
    let dir = catalog(MAP);
    let output = run(dir.path(), &["run"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(
        text(&output.stdout).contains("Catalog: succeeded — 1 objects, 2 rows, 5 rejected"),
        "{}",
        text(&output.stdout)
    );

    let loaded = rows(
        dir.path(),
        "SELECT id || '|' || name || '|' || active || '|' || \"metadata.sku\" || '|' || \"metadata.source\" || '|' || \
         \"metadata.launched\" || '|' || \"metadata.tier\" || '|' || \"default_price_data.currency\" || '|' || \
         \"default_price_data.unit_amount\" FROM products ORDER BY id",
    );
    assert_eq!(
        loaded,
        [
            // 12.50 dollars are 1250 cents; the yen has no minor unit, so 1500 yen stay 1500.
            "sku-1|Mug|1|sku-1|s3-import|1768435200|basic|usd|1250",
            "sku-2|Poster|0|sku-2|s3-import|1769940000|premium|jpy|1500",
        ]
    );

    let rejects = rows(dir.path(), "SELECT line || ' ' || reason FROM _sluice_rejects ORDER BY line");
    let expect = [
        (4, "field `default_price_data.unit_amount` (column `price`)", "negative"),
        (5, "field `name` (column `title`)", "required"),
        (6, "field `default_price_data.unit_amount` (column `price`)", "19.999"),
        (7, "field `default_price_data.currency` (column `currency`)", "xyz"),
        (8, "field `metadata.tier` (column `tier`)", "gold"),
    ];
    assert_eq!(rejects.len(), expect.len(), "{rejects:#?}");
    for (reject, (line, blame, reason)) in rejects.iter().zip(expect) {
        assert!(reject.starts_with(&format!("{line} {blame}")) && reject.contains(reason), "{reject}");
    }
    let raw = rows(dir.path(), "SELECT raw FROM _sluice_rejects WHERE line = 5");
    assert!(raw[0].contains("\"sku\":\"sku-4\""), "the rejected row is kept whole: {raw:?}");
}

#[test]
fn preview_shows_templated_records_and_the_rows_the_template_rejects() {
    let dir = catalog(MAP);
    let output = run(dir.path(), &["preview", "Catalog", "--records", "5"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains("\"default_price_data.unit_amount\":1250")
            && stdout.contains("\"metadata.source\":\"s3-import\""),
        "{stdout}"
    );
    assert!(!stdout.contains("\"title\""), "records are shown as the template made them: {stdout}");
    assert!(stdout.contains("line 4") && stdout.contains("negative"), "{stdout}");
    assert!(!dir.path().join("sluice.db").exists(), "a preview writes nothing");
}

#[test]
fn template_mistakes_fail_the_run_naming_the_dataflow_the_plugin_and_the_field() {
    let unknown_type = MAP.replace("type = \"timestamp\"", "type = \"date\"");
    let output = run(catalog(&unknown_type).path(), &["run"]);
    assert_eq!(output.status.code(), Some(2), "refused before any object is read");
    let stderr = text(&output.stderr);
    assert!(stderr.contains("dataflow `Catalog`: template `map` failed on `[dataflows.Catalog.template.options]`: field `metadata.launched`"), "{stderr}");
    assert!(stderr.contains("date"), "{stderr}");

    let no_name = MAP.replace("name = \"title\"\n", "");
    let output = run(catalog(&no_name).path(), &["run"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("Stripe needs `name` to create products"), "{stderr}");

    let unknown_plugin = "[dataflows.Catalog.template]\nplugin = \"mapper\"\n";
    let output = run(catalog(unknown_plugin).path(), &["run"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("unknown plugin `mapper`") && stderr.contains("map"), "{stderr}");
}

#[test]
fn a_custom_template_component_named_by_path_maps_rows_and_rejects_its_own() {
    let guests = support::build_guests("tests/guests");
    let wasm = guests.join("full_name.wasm");
    let template = format!(
        "[dataflows.Catalog.template]\nplugin = \"names\"\noptions = {{ separator = \" / \" }}\n\n[plugins.names]\npath = \"{}\"\n",
        wasm.display()
    );
    let dir = catalog(&template);
    std::fs::write(
        dir.path().join("data/products.csv"),
        "first,last,email,phone\nAda,Lovelace,ada@example.com,1\n,Hopper,,2\nAlan,,alan@example.com,3\n",
    )
    .unwrap();
    let output = run(dir.path(), &["run"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let loaded =
        rows(dir.path(), "SELECT name || '|' || coalesce(email, '') FROM products ORDER BY _sluice_line");
    assert_eq!(loaded, ["Ada / Lovelace|ada@example.com", "Hopper|"]);
    let rejects = rows(dir.path(), "SELECT line || ' ' || reason FROM _sluice_rejects");
    assert_eq!(rejects, ["4 column `last` is empty"]);
    let columns = rows(dir.path(), "SELECT group_concat(name) FROM pragma_table_info('products')");
    assert_eq!(
        columns,
        ["_sluice_object,_sluice_line,_sluice_run,name,email"],
        "only what the template made is loaded"
    );
}

#[test]
fn a_template_that_traps_fails_its_object_alone_and_the_others_load() {
    let guests = support::build_guests("tests/guests");
    let template =
        format!("[dataflows.Catalog.template]\nplugin = \"{}\"\n", guests.join("full_name.wasm").display());
    let dir = catalog(&template);
    std::fs::write(dir.path().join("data/products.csv"), "first,last\nAda,Lovelace\n").unwrap();
    std::fs::write(dir.path().join("data/traps.csv"), "first,last\nAda,Lovelace\nBad,panic\n").unwrap();
    let output = run(dir.path(), &["run"]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("traps.csv") && stderr.contains("crashed") && stderr.contains("line 3"),
        "{stderr}"
    );
    let loaded = rows(dir.path(), "SELECT _sluice_object || ' ' || name FROM products");
    assert_eq!(loaded, ["products.csv Ada Lovelace"], "nothing of the failed object is kept");
}
