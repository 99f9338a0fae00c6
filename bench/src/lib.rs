//! Benchmark support shared by the bench commands: proxies on loopback that
//! delay ([`proxy`]) or record ([`counting`]) the requests to Garage and
//! DynamoDB Local, the round-trip scenarios of every route ([`trips`]), and
//! the sweep's reference algorithms ([`reference`]).

pub mod counting;
pub mod proxy;
pub mod reference;
pub mod trips;
