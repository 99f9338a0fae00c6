//! Each route's sequential round trips to DynamoDB and S3, counted by a
//! recording proxy in front of Garage and DynamoDB Local: a route that makes
//! one more call than its minimum (see `partwise_bench::trips`) fails here.

use partwise_bench::counting::{CountingProxy, Log, Service};
use partwise_bench::trips::{Scenario, measure};
use partwise_local::Stack;
use std::net::SocketAddr;
use std::time::Duration;

/// Each request is held this long in the proxy, so the calls a handler sends
/// together surely overlap even on loopback and a loaded machine, where the
/// second may reach the proxy milliseconds after the first (calls in
/// sequence never overlap, however long the hold).
const HOLD: Duration = Duration::from_millis(50);

fn socket_of(url: &str) -> SocketAddr {
    url.trim_start_matches("http://")
        .trim_end_matches('/')
        .replace("localhost", "127.0.0.1")
        .parse()
        .expect("a loopback endpoint")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_makes_its_minimum_of_sequential_round_trips() {
    let stack = Stack::from_env_or_start().await.unwrap();
    let log = Log::default();
    let s3 = CountingProxy::start(
        socket_of(stack.var("AWS_ENDPOINT_URL_S3").unwrap()),
        Service::S3,
        log.clone(),
        HOLD,
    )
    .await
    .unwrap();
    let dynamodb = CountingProxy::start(
        socket_of(stack.var("AWS_ENDPOINT_URL_DYNAMODB").unwrap()),
        Service::DynamoDb,
        log.clone(),
        HOLD,
    )
    .await
    .unwrap();
    let mut env = stack.env().clone();
    env.insert("AWS_ENDPOINT_URL_S3".into(), s3.url());
    env.insert("AWS_ENDPOINT_URL_DYNAMODB".into(), dynamodb.url());
    let ctx = Stack::attach(&env).unwrap().context().unwrap();
    let owner = format!("trips-{}", uuid::Uuid::new_v4().simple());
    let mut wrong = vec![];
    for scenario in Scenario::ALL {
        let m = measure(&ctx, &owner, scenario, Some(&log)).await.unwrap();
        let waves = m.waves().len();
        eprintln!("{:<45} {waves}  {}", scenario.label(), m.describe());
        if waves != scenario.minimum() {
            wrong.push(format!(
                "{}: {waves} sequential calls ({}), its minimum is {}",
                scenario.label(),
                m.describe(),
                scenario.minimum()
            ));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}
