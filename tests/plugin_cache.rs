//! Compiled plugins are cached on disk: a second host (a restart) loads them without compiling.

use sluice::plugin::{
    CompileSource, HostSettings, Limits, PluginHost, PluginSource, PluginSpec, bundled_format,
};

#[test]
fn a_restart_loads_compiled_plugins_from_the_cache() {
    let cache = tempfile::tempdir().unwrap();
    let spec = PluginSpec {
        name: "csv".into(),
        source: PluginSource::Bundled(bundled_format("csv").unwrap()),
        limits: Limits::default(),
    };
    let settings = HostSettings { cache_dir: Some(cache.path().to_path_buf()) };

    let first = PluginHost::new(settings.clone()).unwrap();
    let (source, compile_time) = first.load_format(&spec).unwrap().compiled_from();
    assert_eq!(source, CompileSource::Compiled);
    drop(first);
    let entries: Vec<_> = std::fs::read_dir(cache.path()).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0].extension().unwrap(), "cwasm");

    let restarted = PluginHost::new(settings).unwrap();
    let plugin = restarted.load_format(&spec).unwrap();
    let (source, load_time) = plugin.compiled_from();
    assert_eq!(source, CompileSource::Cache, "compiled again in {compile_time:?}");
    let mut parse = plugin.open("cached", &[]).unwrap();
    parse.feed(b"a\n1\n").unwrap();
    assert_eq!(parse.finish().unwrap().batches[0].num_rows(), 1);
    eprintln!("compiled in {compile_time:?}, loaded from the cache in {load_time:?}");

    // A corrupt entry is ignored and replaced, never trusted.
    std::fs::write(&entries[0], b"corrupt").unwrap();
    let third = PluginHost::new(HostSettings { cache_dir: Some(cache.path().to_path_buf()) }).unwrap();
    assert_eq!(third.load_format(&spec).unwrap().compiled_from().0, CompileSource::Compiled);
}
