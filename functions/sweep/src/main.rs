//! `sweep`: aborts stale uploads in bulk, on an EventBridge schedule or by hand.
//! All logic lives in the `partwise` crate; this binary only wires it to Lambda.

fn main() -> Result<(), lambda_runtime::Error> {
    partwise::runtime::block_on(partwise::runtime::serve_sweep())
}
