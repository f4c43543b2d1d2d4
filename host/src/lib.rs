//! Sluice: a config-file-driven data-connector runtime whose file formats are sandboxed WebAssembly
//! components.
//!
//! - [`config`]: `connector.toml`, read and checked.
//! - [`source`]: where objects come from (S3, a local folder), listed and streamed.
//! - [`plugin`]: the wasmtime host that loads format plugins and data templates and runs them under memory and time limits.
//! - [`batch`]: record batches as plugins hand them over (column-major buffers).
//! - [`parse`]: streaming one file through a format plugin.
//! - [`sink`]: where records go (tables in SQLite or PostgreSQL, or Stripe objects).
//! - [`stripe`]: Stripe's API, through one careful client.
//! - [`pg`]: pooled PostgreSQL connections, shared by the sink and the state store.
//! - [`state`]: runs, the object ledger and cursors.
//! - [`sync`]: a dataflow's run: planning, then each object from source to sink, exactly once.
//! - [`overview`]: the dataflow list and each dataflow's run history, as users look at them.
//! - [`daemon`]: `sluice daemon`: schedules, live reload, the HTTP API, the dashboard page.
//! - [`metrics`]: what Sluice counts, for the daemon's `/metrics`.
//! - [`embed`]: Sluice inside another Rust program: its own sources and sinks, progress, pulled batches.

pub mod batch;
pub mod config;
pub mod daemon;
pub mod embed;
pub mod metrics;
pub mod overview;
pub mod parse;
pub mod pg;
pub mod plugin;
pub mod sink;
pub mod source;
pub mod state;
pub mod stripe;
pub mod sync;
