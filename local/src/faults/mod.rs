//! A seeded fault-injecting HTTP proxy for the local stack: it stands between
//! the handlers' SDK clients and Garage or DynamoDB Local and, by rule, answers
//! with the services' own throttling and error bodies, resets connections
//! before or after forwarding, or delays and stalls requests.
//!
//! - [`rules`]: what to inject, where and how often; [`operation`]: which
//!   operation a request is; [`decide`]: the seeded per-request choice;
//! - [`bodies`]: S3's and DynamoDB's error answers; [`proxy`]: the server and its counts.

pub mod bodies;
pub mod decide;
pub mod operation;
pub mod proxy;
pub mod rules;

pub use decide::decide;
pub use proxy::{Counts, FaultProxy};
pub use rules::{Fault, Rule, Service};
