//! `notify`: reads the tracking table's stream and publishes upload events to EventBridge.
//! All logic lives in the `partwise` crate; this binary only wires it to Lambda.

fn main() -> Result<(), lambda_runtime::Error> {
    partwise::runtime::block_on(partwise::runtime::serve_notify())
}
