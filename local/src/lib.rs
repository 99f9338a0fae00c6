//! Partwise on one machine, with no AWS account: a real local stack (Garage for
//! S3, DynamoDB Local) and an API Gateway HTTP API stand-in in front of
//! [`partwise::api::handle`].
//!
//! - [`stack`]: start (or attach to) the local stack, shaped by `template.yaml`;
//! - [`server`]: serve the HTTP API on loopback, exactly as API Gateway would call the Lambdas;
//! - [`template`]: `template.yaml`, read so local and cloud cannot drift apart;
//! - [`stand_ins`]: the AWS stand-ins (EventBridge's PutEvents, Secrets Manager, the Lambda
//!   Runtime API, S3's "Object Created" notifications), on loopback;
//! - [`events`]: the table's stream fed to `notify`;
//! - [`backlog`]: seed stale uploads, and count what a sweep left;
//! - [`faults`]: a seeded fault-injecting proxy in front of Garage or DynamoDB Local;
//! - [`calls`]: handler calls in process, as API Gateway makes them; [`races`]: race trials;
//! - [`heap`]: the live heap's size, for the load bench.

pub mod backlog;
pub mod calls;
pub mod events;
pub mod faults;
pub mod heap;
pub mod races;
pub mod server;
pub mod stack;
pub mod stand_ins;
pub mod template;

mod process;

// Their paths before they moved into `stand_ins`, for the callers that name them.
pub use stand_ins::{eventbridge, runtime_api, secrets};

pub use server::{Cors, Page, ServerHandle, ServerOptions, spawn};
pub use stack::{Stack, StackError, StackPlan};
