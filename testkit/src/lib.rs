//! Test support for Sluice: stand-ins, on 127.0.0.1, for the services its sources and sinks talk to.
//! Not part of the product; used by the end-to-end tests and the benchmarks.

pub mod orders;
pub mod postgres;
pub mod s3;
pub mod sqs;
pub mod stripe;
pub mod sts;

pub use postgres::TestDatabase;
pub use s3::S3Server;
pub use sqs::SqsServer;
pub use stripe::StripeServer;
