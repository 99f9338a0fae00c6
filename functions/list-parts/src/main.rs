//! `list-parts`: lists the parts S3 holds, for resuming, and reports upload status.
//! All logic lives in the `partwise` crate; this binary only wires it to Lambda.

fn main() -> Result<(), lambda_runtime::Error> {
    partwise::runtime::block_on(partwise::runtime::serve_api(
        partwise::api::Function::ListParts,
    ))
}
