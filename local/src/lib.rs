//! Partwise on one machine, with no AWS account: a real local stack (Garage for
//! S3, DynamoDB Local) and an API Gateway HTTP API stand-in in front of
//! [`partwise::api::handle`].
//!
//! - [`stack`]: start (or attach to) the local stack, shaped by `template.yaml`;
//! - [`server`]: serve the HTTP API on loopback, exactly as API Gateway would call the Lambdas;
//! - [`template`]: `template.yaml`, read so local and cloud cannot drift apart.

pub mod server;
pub mod stack;
pub mod template;

mod process;

pub use server::{Cors, ServerHandle, ServerOptions, spawn};
pub use stack::{Stack, StackError, StackPlan};
