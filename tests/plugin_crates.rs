//! The bundled plugins' own tests, natively: the SDK's emitters, the csv plugin's records and spans cut into
//! chunks of every size, the parquet plugin's ranges and the rest. They live in the plugin workspace
//! (`plugins/`), which the host's build compiles for `wasm32-wasip2` only, so the host's `cargo test` runs
//! them here, and CI with it.

mod support;

use std::process::Command;

#[test]
fn the_plugin_workspace_passes_its_own_tests() {
    let output = Command::new(env!("CARGO"))
        .current_dir(support::root().join("plugins"))
        .args(["test", "--locked", "--workspace"])
        // A folder of its own: the plugin workspace built for the host's target, beside its wasm build.
        .env("CARGO_TARGET_DIR", support::root().join("target").join("plugins-native"))
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .output()
        .expect("running cargo");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the plugin workspace's tests failed:\n{stdout}\n{stderr}");
    // The crates with tests of their own each ran them: a crate left out of the workspace would pass too.
    for name in
        ["sluice_plugin_sdk", "sluice_csv", "sluice_parquet", "sluice_avro", "sluice_map", "sluice_as_text"]
    {
        assert!(stderr.contains(&format!("/{name}-")), "{name}'s tests did not run:\n{stderr}");
    }
    assert!(!stdout.contains("test result: FAILED"), "{stdout}");
}
