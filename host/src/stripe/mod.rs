//! Stripe's API: the client every Stripe sink and source shares, records as Stripe's parameters, and
//! Stripe's objects as records.

mod client;
mod form;
mod objects;
mod records;

pub use client::{API_BASE, API_VERSION, Answer, ClientSettings, StripeClient, StripeError};
pub use form::{bracketed, record_params};
pub use objects::{OBJECTS, ObjectSpec, OnChanged, Required, object_spec, supported_objects};
pub use records::{json_rows_batch, objects_batch};
