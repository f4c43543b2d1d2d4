//! Stripe's API: the client every Stripe sink and source shares, and records as Stripe's parameters.

mod client;
mod form;

pub use client::{API_BASE, API_VERSION, Answer, ClientSettings, StripeClient, StripeError};
pub use form::{bracketed, record_params, top_level};
