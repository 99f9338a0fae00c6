//! `sign-part`: presigns part uploads, one part or a batch.
//! All logic lives in the `partwise` crate; this binary only wires it to Lambda.

fn main() -> Result<(), lambda_runtime::Error> {
    partwise::runtime::block_on(partwise::runtime::serve_api(
        partwise::api::Function::SignPart,
    ))
}
