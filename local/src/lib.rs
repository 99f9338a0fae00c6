//! Partwise on one machine, with no AWS account: a real local stack (Garage for
//! S3, DynamoDB Local) and an API Gateway HTTP API stand-in in front of
//! [`partwise::api::handle`].
//!
//! - [`stack`]: start (or attach to) the local stack, shaped by `template.yaml`;
//! - [`server`]: serve the HTTP API on loopback, exactly as API Gateway would call the Lambdas;
//! - [`template`]: `template.yaml`, read so local and cloud cannot drift apart;
//! - [`runtime_api`]: a Lambda Runtime API, to run a function's real binary as Lambda does;
//! - [`events`]: the table's stream fed to `notify`; [`eventbridge`]: a PutEvents receiver on loopback;
//! - [`secrets`]: a GetSecretValue stand-in on loopback (grant keys), SigV4-checked as [`eventbridge`];
//! - [`backlog`]: seed stale uploads, and count what a sweep left;
//! - [`faults`]: a seeded fault-injecting proxy in front of Garage or DynamoDB Local;
//! - [`calls`]: handler calls in process, as API Gateway makes them; [`races`]: race trials;
//! - [`heap`]: the live heap's size, for the load bench.

pub mod backlog;
pub mod calls;
pub mod eventbridge;
pub mod events;
pub mod faults;
pub mod heap;
pub mod races;
pub mod runtime_api;
pub mod secrets;
pub mod server;
pub mod stack;
pub mod template;

mod process;
mod sigv4;
mod stand_in;

pub use server::{Cors, Page, ServerHandle, ServerOptions, spawn};
pub use stack::{Stack, StackError, StackPlan};
