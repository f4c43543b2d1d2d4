//! Avro and Excel through the bundled `avro` and `xlsx` plugins (contract 1.2.0, read by ranges) against the
//! libraries they are built on reading the same file natively, in the same run: apache-avro decoding each
//! record to its values, and calamine reading the sheet into its cell range.
//!
//! ```sh
//! cargo bench --bench formats                           # 1 million Avro orders, 200,000 rows of a sheet
//! cargo bench --bench formats -- --rows 200000 --sheet-rows 50000 --rounds 3
//! ```

#[allow(dead_code)]
mod support;

use apache_avro::types::{Record, Value as Avro};
use calamine::Reader as _;
use sluice::parse::parse_ranged;
use sluice::plugin::{FormatPlugin, HostSettings, PluginHost, PluginSource, PluginSpec, bundled_format};
use sluice::source::FileRanges;
use std::io::{BufReader, Write};
use std::path::Path;
use std::time::{Duration, Instant};
use support::{median, number_flag};

const AVRO_SCHEMA: &str = r#"{
    "type": "record", "name": "Order",
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "customer", "type": "string"},
        {"name": "amount", "type": "double"},
        {"name": "paid", "type": "boolean"},
        {"name": "created", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {"name": "note", "type": ["null", "string"]}
    ]
}"#;

fn main() {
    sluice::allocator::limit_arenas();
    let rows = number_flag("--rows", 1_000_000);
    let sheet_rows = number_flag("--sheet-rows", 200_000);
    let rounds = number_flag("--rounds", 5);
    let dir = tempfile::tempdir().expect("a temporary folder");
    let host = PluginHost::new(HostSettings::default()).expect("plugin host");

    let orders = dir.path().join("orders.avro");
    write_avro(&orders, rows);
    let size = std::fs::metadata(&orders).unwrap().len();
    println!("orders.avro: {rows} records, 6 fields, snappy, {:.1} MB", size as f64 / 1e6);
    let avro = load(&host, "avro");
    compare(
        rows,
        rounds,
        "apache-avro to values",
        || read_avro_natively(&orders),
        || through(&avro, &orders),
    );

    let book = dir.path().join("orders.xlsx");
    write_xlsx(&book, sheet_rows);
    let size = std::fs::metadata(&book).unwrap().len();
    println!("orders.xlsx: {sheet_rows} rows, 6 columns, stored, {:.1} MB", size as f64 / 1e6);
    let xlsx = load(&host, "xlsx");
    compare(
        sheet_rows,
        rounds,
        "calamine to a range",
        || read_xlsx_natively(&book),
        || through(&xlsx, &book),
    );
}

fn load(host: &PluginHost, name: &str) -> FormatPlugin {
    let spec = PluginSpec {
        name: name.into(),
        source: PluginSource::Bundled(bundled_format(name).expect("bundled")),
        limits: Default::default(),
    };
    host.load_format(&spec).expect("the plugin loads")
}

/// Times `native` and `plugin` (each reading every row), `rounds` times each, and prints their medians.
fn compare(
    rows: usize,
    rounds: usize,
    baseline: &str,
    native: impl Fn() -> usize,
    plugin: impl Fn() -> usize,
) {
    let (mut natively, mut plugged) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let started = Instant::now();
        assert_eq!(native(), rows);
        natively.push(started.elapsed());
        let started = Instant::now();
        assert_eq!(plugin(), rows);
        plugged.push(started.elapsed());
    }
    let (natively, plugged) = (median(natively), median(plugged));
    let rate = |d: Duration| rows as f64 / d.as_secs_f64() / 1e6;
    println!("  {baseline:<26} {:>7.3} s  {:>6.2} M rows/s", natively.as_secs_f64(), rate(natively));
    println!(
        "  {:<26} {:>7.3} s  {:>6.2} M rows/s",
        "plugin to batches",
        plugged.as_secs_f64(),
        rate(plugged)
    );
    println!("  {:<26} {:>7.2}", "plugin speed / baseline", natively.as_secs_f64() / plugged.as_secs_f64());
}

/// Rows the plugin read from `file`, by ranges, into batches.
fn through(plugin: &FormatPlugin, file: &Path) -> usize {
    let input = FileRanges::new(std::fs::File::open(file).unwrap()).unwrap();
    let mut read = 0;
    let options = match plugin.name() {
        "xlsx" => vec![("sheet".to_string(), "Orders".to_string())],
        _ => Vec::new(),
    };
    parse_ranged(plugin, None, "bench", &options, Box::new(input), |parsed| {
        read += parsed.batches.iter().map(|b| b.num_rows()).sum::<usize>();
        Ok(())
    })
    .expect("the plugin reads the file");
    read
}

fn write_avro(path: &Path, rows: usize) {
    let schema = apache_avro::Schema::parse_str(AVRO_SCHEMA).unwrap();
    let file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut writer = apache_avro::Writer::with_codec(&schema, file, apache_avro::Codec::Snappy);
    for i in 0..rows as i64 {
        let mut record = Record::new(&schema).unwrap();
        record.put("id", i);
        record.put("customer", format!("customer {}", i % 9973));
        record.put("amount", (i % 100_000) as f64 / 100.0);
        record.put("paid", i % 3 != 0);
        record.put("created", Avro::TimestampMicros(1_767_225_600_000_000 + i * 1_000_003));
        let note = if i % 4 == 0 {
            Avro::Union(1, Box::new(Avro::String(format!("note {i}"))))
        } else {
            Avro::Union(0, Box::new(Avro::Null))
        };
        record.put("note", note);
        writer.append(record).unwrap();
    }
    writer.into_inner().unwrap().flush().unwrap();
}

fn read_avro_natively(path: &Path) -> usize {
    let reader = apache_avro::Reader::new(BufReader::new(std::fs::File::open(path).unwrap())).unwrap();
    let mut records = 0;
    for record in reader {
        record.expect("a record");
        records += 1;
    }
    records
}

/// A workbook of one sheet, `Orders`, of a header and `rows` rows: ids, customers (shared strings),
/// amounts, booleans, dates (a date style) and notes in some rows; stored, as a ZIP without compression.
fn write_xlsx(path: &Path, rows: usize) {
    let mut sheet = String::from(
        r#"<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>id</t></is></c><c r="B1" t="inlineStr"><is><t>customer</t></is></c><c r="C1" t="inlineStr"><is><t>amount</t></is></c><c r="D1" t="inlineStr"><is><t>paid</t></is></c><c r="E1" t="inlineStr"><is><t>day</t></is></c><c r="F1" t="inlineStr"><is><t>note</t></is></c></row>"#,
    );
    for i in 0..rows {
        let r = i + 2;
        sheet.push_str(&format!(
            r#"<row r="{r}"><c r="A{r}"><v>{i}</v></c><c r="B{r}" t="s"><v>{}</v></c><c r="C{r}"><v>{}.{:02}</v></c><c r="D{r}" t="b"><v>{}</v></c><c r="E{r}" s="1"><v>{}</v></c>"#,
            i % 9973,
            i % 1000,
            i % 100,
            u8::from(i % 3 != 0),
            46_000 + i % 700
        ));
        if i % 4 == 0 {
            sheet.push_str(&format!(r#"<c r="F{r}" t="inlineStr"><is><t>note {i}</t></is></c>"#));
        }
        sheet.push_str("</row>");
    }
    sheet.push_str("</sheetData></worksheet>");
    let strings: String = (0..9973).map(|c| format!("<si><t>customer {c}</t></si>")).collect();
    let parts = [
        (
            "[Content_Types].xml",
            r#"<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/></Types>"#.to_string(),
        ),
        (
            "_rels/.rels",
            r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>"#.to_string(),
        ),
        (
            "xl/workbook.xml",
            r#"<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="Orders" sheetId="1" r:id="rId1"/></sheets></workbook>"#.to_string(),
        ),
        (
            "xl/_rels/workbook.xml.rels",
            r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/><Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings" Target="sharedStrings.xml"/><Relationship Id="rId3" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/styles" Target="styles.xml"/></Relationships>"#.to_string(),
        ),
        (
            "xl/sharedStrings.xml",
            format!(r#"<?xml version="1.0" encoding="UTF-8"?><sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">{strings}</sst>"#),
        ),
        (
            "xl/styles.xml",
            r#"<?xml version="1.0" encoding="UTF-8"?><styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><cellXfs count="2"><xf numFmtId="0"/><xf numFmtId="14" applyNumberFormat="1"/></cellXfs></styleSheet>"#.to_string(),
        ),
        ("xl/worksheets/sheet1.xml", sheet),
    ];
    let mut writer = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let stored = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .large_file(false);
    for (name, text) in parts {
        writer.start_file(name, stored).unwrap();
        writer.write_all(text.as_bytes()).unwrap();
    }
    writer.finish().unwrap();
}

fn read_xlsx_natively(path: &Path) -> usize {
    let mut workbook: calamine::Xlsx<_> = calamine::open_workbook(path).unwrap();
    let range = workbook.worksheet_range("Orders").unwrap();
    // Rows under the header, as the plugin hands them on.
    range.rows().count() - 1
}
