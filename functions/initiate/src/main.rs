//! `initiate`: starts multipart uploads (POST /s3/multipart) and hands out presigned POST forms (GET /s3/params).
//! All logic lives in the `partwise` crate; this binary only wires it to Lambda.

fn main() -> Result<(), lambda_runtime::Error> {
    partwise::runtime::block_on(partwise::runtime::serve_api(
        partwise::api::Function::Initiate,
    ))
}
