#![no_main]
//! Bucket policy documents on arbitrary bytes, and their evaluation: a policy may be refused; it
//! must never panic, and one accepted must evaluate every request without panicking (globs,
//! CIDR blocks and numbers in conditions included) and give the same answer twice.

use s3front::policy::{Context, Decision, parse};

struct Req<'a> {
    requester: Option<&'a str>,
    action: &'a str,
    resource: &'a str,
    value: &'a str,
}

impl Context for Req<'_> {
    fn requester(&self) -> Option<&str> {
        self.requester
    }
    fn action(&self) -> &str {
        self.action
    }
    fn resource(&self) -> &str {
        self.resource
    }
    fn value(&self, key: &str) -> Vec<String> {
        if key.len() % 3 == 0 { Vec::new() } else { vec![self.value.to_string()] }
    }
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    // The first byte splits off a request value (prefix, address, number) from the document.
    let Some((&split, rest)) = data.split_first() else { return };
    let cut = (split as usize).min(rest.len());
    let (value, document) = rest.split_at(cut);
    let Ok(policy) = parse(document, Some("fuzz-bucket")) else { return };
    assert!(!policy.statements.is_empty());
    let value = String::from_utf8_lossy(value);
    for requester in [None, Some("alice")] {
        for (action, resource) in [("s3:GetObject", "arn:aws:s3:::fuzz-bucket/a/b"), ("s3:ListBucket", "arn:aws:s3:::fuzz-bucket")] {
            let req = Req { requester, action, resource, value: &value };
            let first: Decision = policy.evaluate(&req);
            assert_eq!(first, policy.evaluate(&req));
        }
    }
});
