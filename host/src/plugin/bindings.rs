//! The host side of the worlds of `wit/sluice.wit`, a module per world. The worlds share their interfaces
//! (`types`, `input`, `columns`): each is generated once, in the first world below that has it, and the
//! later worlds use it from there, so that what a plugin returns is read by one piece of code whichever
//! world it was built for.

/// The `format` world: a parser fed a file as a stream (contract 1.0).
pub(crate) mod format {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "format",
    });
}

/// The `ranged-format` world: a parser that reads its file by ranges (contract 1.2.0).
pub(crate) mod ranged {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "ranged-format",
        with: { "sluice:plugin/types": crate::plugin::bindings::format::sluice::plugin::types },
    });
}

/// The `typed-ranged-format` world: a ranged parser that hands over typed columns (contract 1.3.0).
pub(crate) mod typed_ranged {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "typed-ranged-format",
        with: {
            "sluice:plugin/types": crate::plugin::bindings::format::sluice::plugin::types,
            "sluice:plugin/input": crate::plugin::bindings::ranged::sluice::plugin::input,
        },
    });
}

/// The `typed-format` world: a streaming parser that hands over typed columns and spans of its input
/// (contract 1.4.0).
pub(crate) mod typed {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "typed-format",
        with: {
            "sluice:plugin/types": crate::plugin::bindings::format::sluice::plugin::types,
            "sluice:plugin/columns": crate::plugin::bindings::typed_ranged::sluice::plugin::columns,
        },
    });
}

/// The `template` world: a data template, which takes batches in the form they come out of a parser.
pub(crate) mod template {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "template",
        with: { "sluice:plugin/types": crate::plugin::bindings::format::sluice::plugin::types },
    });
}
