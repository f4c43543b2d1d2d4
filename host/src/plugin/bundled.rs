//! The plugins built into the binary (by `build.rs`), by the names `connector.toml` uses for them.

const CSV: &[u8] = include_bytes!(concat!(env!("SLUICE_BUNDLED_PLUGINS"), "/sluice_csv.wasm"));
const JSON: &[u8] = include_bytes!(concat!(env!("SLUICE_BUNDLED_PLUGINS"), "/sluice_json.wasm"));
const JSONL: &[u8] = include_bytes!(concat!(env!("SLUICE_BUNDLED_PLUGINS"), "/sluice_jsonl.wasm"));
const PARQUET: &[u8] = include_bytes!(concat!(env!("SLUICE_BUNDLED_PLUGINS"), "/sluice_parquet.wasm"));
const XML: &[u8] = include_bytes!(concat!(env!("SLUICE_BUNDLED_PLUGINS"), "/sluice_xml.wasm"));
const AVRO: &[u8] = include_bytes!(concat!(env!("SLUICE_BUNDLED_PLUGINS"), "/sluice_avro.wasm"));
const XLSX: &[u8] = include_bytes!(concat!(env!("SLUICE_BUNDLED_PLUGINS"), "/sluice_xlsx.wasm"));
const MAP: &[u8] = include_bytes!(concat!(env!("SLUICE_BUNDLED_PLUGINS"), "/sluice_map.wasm"));

/// The names of the bundled format plugins.
pub const BUNDLED_FORMATS: &[&str] = &["csv", "tsv", "json", "jsonl", "parquet", "xml", "avro", "xlsx"];
/// The names of the bundled data templates.
pub const BUNDLED_TEMPLATES: &[&str] = &["map"];

/// A bundled plugin: its component and the options it starts from (which a dataflow's own override).
#[derive(Clone, Copy, Debug)]
pub struct Bundled {
    pub(crate) wasm: &'static [u8],
    pub(crate) default_options: &'static [(&'static str, &'static str)],
}

/// The bundled plugin called `name`. `tsv` is the CSV parser with a tab delimiter.
pub fn bundled_format(name: &str) -> Option<Bundled> {
    let (wasm, default_options): (_, &'static [_]) = match name {
        "csv" => (CSV, &[]),
        "tsv" => (CSV, &[("delimiter", "\t")]),
        "json" => (JSON, &[]),
        "jsonl" => (JSONL, &[]),
        "parquet" => (PARQUET, &[]),
        "xml" => (XML, &[]),
        "avro" => (AVRO, &[]),
        "xlsx" => (XLSX, &[]),
        _ => return None,
    };
    Some(Bundled { wasm, default_options })
}

/// The bundled data template called `name`.
pub fn bundled_template(name: &str) -> Option<Bundled> {
    (name == "map").then_some(Bundled { wasm: MAP, default_options: &[] })
}
