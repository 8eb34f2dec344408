//! S3's XML: the response bodies we write and the request bodies we read.
//!
//! Everything goes through quick-xml, for writing (escaping) as for reading; nothing here builds
//! or scans XML by hand. `out` is the writing layer, `responses` the result bodies, `requests`
//! the bounded parsers for the few bodies clients send.
//!
//! Keys with characters XML 1.0 cannot carry (U+0001..U+0008, U+000B, U+000C, U+000E..U+001F,
//! U+FFFE, U+FFFF) are written as character references (`&#x1;`), as S3 writes them: strict
//! XML 1.0 parsers reject those bodies, quick-xml and lenient parsers read them back, and clients
//! that care ask for `encoding-type=url` (botocore always does), which S3 recommends for them.

pub(crate) mod out;
pub mod requests;
pub mod responses;

pub use out::{S3_XMLNS, format_timestamp_ms, parse_timestamp_ms, url_encode_name};
pub use requests::{
    COMPLETE_PARTS_MAX, CompletedPart, DELETE_OBJECTS_MAX, DeleteRequest, ObjectIdentifier, VersioningConfiguration, XML_BODY_BYTES_MAX,
    XML_DEPTH_MAX, XML_ELEMENTS_MAX, XmlError, parse_complete_multipart, parse_create_bucket, parse_delete_objects,
    parse_versioning_configuration, strip_etag_quotes, TAGGING_TAGS_READ_MAX, parse_access_control_policy, parse_cors_configuration, parse_lifecycle_configuration, parse_public_access_block, parse_ownership_controls, parse_bucket_encryption, parse_tagging, parse_object_lock_configuration, parse_retention, parse_legal_hold,
};
pub use responses::*;
