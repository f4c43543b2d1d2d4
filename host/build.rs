//! Builds the bundled plugins (formats and the `map` template) (`plugins/`) for `wasm32-wasip2`, so that `cargo build` of the host on
//! a fresh clone yields a binary with its plugins inside it.
//!
//! Why a nested cargo: the plugins are a workspace of their own for another target. The nested build uses
//! its own target directory (`target/wasm-plugins`), so it never waits on the outer build's lock, and it is
//! shared by every profile and by clippy, so the plugins are compiled once rather than once per profile.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const WASM_TARGET: &str = "wasm32-wasip2";
/// The bundled plugins, by the crate name of each.
const BUNDLED: &[&str] = &[
    "sluice_csv",
    "sluice_json",
    "sluice_jsonl",
    "sluice_parquet",
    "sluice_xml",
    "sluice_avro",
    "sluice_xlsx",
    "sluice_map",
];

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest_dir.parent().expect("host/ sits in the workspace root").to_path_buf();
    let plugins = root.join("plugins");
    for watched in [
        "Cargo.toml",
        "Cargo.lock",
        ".cargo/config.toml",
        "sdk",
        "csv",
        "json",
        "jsonl",
        "parquet",
        "xml",
        "avro",
        "xlsx",
        "map",
    ] {
        println!("cargo:rerun-if-changed={}", plugins.join(watched).display());
    }
    println!("cargo:rerun-if-changed={}", root.join("wit").display());

    require_wasm_target();
    let c_compiler = wasm_c_compiler();
    let target_dir = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join("wasm-plugins");
    build_plugins(&plugins, &target_dir, &c_compiler);

    let out = target_dir.join(WASM_TARGET).join("release");
    for name in BUNDLED {
        let wasm = out.join(format!("{name}.wasm"));
        assert!(wasm.exists(), "the plugin build did not produce {}", wasm.display());
    }
    println!("cargo:rustc-env=SLUICE_BUNDLED_PLUGINS={}", out.display());
}

/// Fails with the fix when the wasm target's standard library is not installed.
fn require_wasm_target() {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot =
        Command::new(&rustc).args(["--print", "sysroot"]).output().expect("running rustc --print sysroot");
    let sysroot = String::from_utf8_lossy(&sysroot.stdout).trim().to_string();
    let target_lib = Path::new(&sysroot).join("lib/rustlib").join(WASM_TARGET);
    if !target_lib.exists() {
        panic!(
            "the Rust target {WASM_TARGET} is not installed, and Sluice's bundled plugins are built for it.\n\
             Install it with:  rustup target add {WASM_TARGET}"
        );
    }
}

/// A C compiler and archiver that target WebAssembly, for the C inside a plugin (zstd, a codec of the
/// `parquet` plugin). Any clang does (gcc cannot target wasm): `CC_wasm32_wasip2` and
/// `AR_wasm32_wasip2` where set, else the first `clang` and `llvm-ar` (plain or versioned) on the PATH.
struct WasmCCompiler {
    cc: String,
    ar: String,
}

fn wasm_c_compiler() -> WasmCCompiler {
    println!("cargo:rerun-if-env-changed=CC_wasm32_wasip2");
    println!("cargo:rerun-if-env-changed=AR_wasm32_wasip2");
    let find = |tool: &str| {
        std::iter::once(tool.to_string())
            .chain((14..=30).rev().map(|version| format!("{tool}-{version}")))
            .find(|name| Command::new(name).arg("--version").output().is_ok_and(|out| out.status.success()))
    };
    let cc = env::var("CC_wasm32_wasip2").ok().or_else(|| find("clang"));
    let ar = env::var("AR_wasm32_wasip2").ok().or_else(|| find("llvm-ar"));
    match (cc, ar) {
        (Some(cc), Some(ar)) => WasmCCompiler { cc, ar },
        _ => panic!(
            "no clang and llvm-ar were found, and the bundled parquet plugin's zstd codec is C compiled for \
             {WASM_TARGET} (gcc cannot target WebAssembly).\n\
             Install them with:  apt-get install clang   (or clang-14 on Debian 12; any clang from 14 on)\n\
             or name them with CC_wasm32_wasip2 and AR_wasm32_wasip2."
        ),
    }
}

fn build_plugins(plugins: &Path, target_dir: &Path, c_compiler: &WasmCCompiler) {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(plugins)
        .args(["build", "--release", "--locked", "--target", WASM_TARGET])
        .env("CARGO_TARGET_DIR", target_dir)
        .env("CC_wasm32_wasip2", &c_compiler.cc)
        .env("AR_wasm32_wasip2", &c_compiler.ar)
        // The host's C headers are not the target's: zstd builds against its own shims of the few it
        // needs (zstd-sys's wasm-shim) and clang's freestanding ones, never the host's glibc.
        .env("CFLAGS_wasm32_wasip2", "-nostdlibinc");
    // The outer build's flags are for the host target; passed on, they would break the wasm build or force
    // a rebuild of it on every change of profile.
    for (key, _) in env::vars_os() {
        let key = key.to_string_lossy();
        if key == "RUSTFLAGS"
            || key == "RUSTC_WRAPPER"
            || key == "RUSTC_WORKSPACE_WRAPPER"
            || key.starts_with("CARGO_ENCODED_RUSTFLAGS")
            || key.starts_with("CARGO_PROFILE_")
            || key.starts_with("CARGO_BUILD_")
            || key == "CARGO_MAKEFLAGS"
        {
            command.env_remove(key.as_ref());
        }
    }
    let status = command.status().expect("running cargo for the bundled plugins");
    assert!(status.success(), "building the bundled plugins for {WASM_TARGET} failed (see above)");
}
