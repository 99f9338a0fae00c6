//! Loopback stand-ins for the AWS services the local stack lacks, each
//! answering (or sending) exactly what the service would:
//!
//! - [`eventbridge`]: a PutEvents receiver; [`secrets`]: GetSecretValue (grant keys),
//!   both checking SigV4 ([`sigv4`]) and served by [`stand_in`];
//! - [`runtime_api`]: a Lambda Runtime API, to run a function's real binary as Lambda does;
//! - [`s3_events`]: S3's "Object Created" notifications, which Garage does not send.

pub mod eventbridge;
pub mod runtime_api;
pub mod s3_events;
pub mod secrets;

pub(crate) mod sigv4;
pub(crate) mod stand_in;
