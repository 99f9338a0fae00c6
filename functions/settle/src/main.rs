//! `settle`: takes S3's "Object Created" notifications and settles the uploads they belong to.
//! All logic lives in the `partwise` crate; this binary only wires it to Lambda.

fn main() -> Result<(), lambda_runtime::Error> {
    partwise::runtime::block_on(partwise::runtime::serve_settle())
}
