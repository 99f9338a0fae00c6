//! `complete`: checks the part list and completes the upload.
//! All logic lives in the `partwise` crate; this binary only wires it to Lambda.

fn main() -> Result<(), lambda_runtime::Error> {
    partwise::runtime::block_on(partwise::runtime::serve_api(
        partwise::api::Function::Complete,
    ))
}
