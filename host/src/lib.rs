//! Sluice: a config-file-driven data-connector runtime whose file formats are sandboxed WebAssembly
//! components.
//!
//! - [`config`]: `connector.toml`, read and checked.
//! - [`plugin`]: the wasmtime host that loads format plugins and runs them under memory and time limits.
//! - [`batch`]: record batches as plugins hand them over (column-major buffers).
//! - [`parse`]: streaming one file through a format plugin.

pub mod batch;
pub mod config;
pub mod parse;
pub mod plugin;
