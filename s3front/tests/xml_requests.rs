//! Request body parsers: the bodies AWS documents and SDKs send, then what must be refused.

use s3front::error::ErrorCode;
use s3front::xml::*;

fn malformed<T: std::fmt::Debug>(result: Result<T, XmlError>, message_part: &str) {
    let error = result.expect_err("body must be refused");
    assert_eq!(error.code, ErrorCode::MalformedXML, "{error}");
    assert!(error.message.contains(message_part), "message {:?} lacks {message_part:?}", error.message);
}

fn object(key: &str, version_id: Option<&str>) -> ObjectIdentifier {
    ObjectIdentifier { key: key.into(), version_id: version_id.map(str::to_owned) }
}

// ---------------------------------------------------------------------------------------------
// CreateBucket

#[test]
fn create_bucket_bodies() {
    assert_eq!(parse_create_bucket(b""), Ok(None));
    assert_eq!(parse_create_bucket(b" \r\n"), Ok(None));
    let aws_doc = br#"<CreateBucketConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <LocationConstraint>eu-west-1</LocationConstraint>
</CreateBucketConfiguration>"#;
    assert_eq!(parse_create_bucket(aws_doc), Ok(Some("eu-west-1".into())));
    // boto3: declaration, no whitespace.
    let boto3 = br#"<?xml version="1.0" encoding="UTF-8"?><CreateBucketConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><LocationConstraint>ap-south-1</LocationConstraint></CreateBucketConfiguration>"#;
    assert_eq!(parse_create_bucket(boto3), Ok(Some("ap-south-1".into())));
    let no_namespace = b"<CreateBucketConfiguration><LocationConstraint>us-west-2</LocationConstraint></CreateBucketConfiguration>";
    assert_eq!(parse_create_bucket(no_namespace), Ok(Some("us-west-2".into())));
    let empty = b"<CreateBucketConfiguration><LocationConstraint/></CreateBucketConfiguration>";
    assert_eq!(parse_create_bucket(empty), Ok(None));
    let directory_bucket = b"<CreateBucketConfiguration><Location><Name>usw2-az1</Name><Type>AvailabilityZone</Type></Location>\
        <Bucket><DataRedundancy>SingleAvailabilityZone</DataRedundancy><Type>Directory</Type></Bucket></CreateBucketConfiguration>";
    assert_eq!(parse_create_bucket(directory_bucket), Ok(None));
    malformed(parse_create_bucket(b"<Other/>"), "expected <CreateBucketConfiguration>");
    malformed(parse_create_bucket(b"<CreateBucketConfiguration>"), "ends inside");
}

// ---------------------------------------------------------------------------------------------
// DeleteObjects

#[test]
fn delete_objects_aws_doc_body() {
    let body = br#"<?xml version="1.0" encoding="UTF-8"?>
<Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
    <Object>
         <Key>sample1.txt</Key>
    </Object>
    <Object>
         <Key>sample2.txt</Key>
         <VersionId>OYcLXagmS.WaD..oyH4KRguB95_YhLs7</VersionId>
    </Object>
    <Quiet>true</Quiet>
</Delete>"#;
    let request = parse_delete_objects(body).expect("AWS's example");
    assert!(request.quiet);
    assert_eq!(request.objects, vec![object("sample1.txt", None), object("sample2.txt", Some("OYcLXagmS.WaD..oyH4KRguB95_YhLs7"))]);
}

#[test]
fn delete_objects_sdk_bodies() {
    // aws-sdk-rust / boto3: one line, Quiet last or absent, entities escaped.
    let body = br#"<Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Object><Key>a &amp; b &lt;c&gt; &quot;d&quot; &apos;e&apos;</Key></Object><Object><Key> spaced </Key></Object><Quiet>false</Quiet></Delete>"#;
    let request = parse_delete_objects(body).expect("SDK body");
    assert!(!request.quiet);
    assert_eq!(request.objects, vec![object("a & b <c> \"d\" 'e'", None), object(" spaced ", None)]);
    // Character references, CDATA, comments, a prefixed namespace, unknown elements.
    let body = br#"<s3:Delete xmlns:s3="http://s3.amazonaws.com/doc/2006-03-01/"><!-- c --><s3:Object><s3:Key>x&#x1;y&#65;<![CDATA[<z>]]></s3:Key><s3:ETag>"e"</s3:ETag><s3:Size>3</s3:Size></s3:Object></s3:Delete>"#;
    let request = parse_delete_objects(body).expect("prefixed body");
    assert!(!request.quiet);
    assert_eq!(request.objects, vec![object("x\u{1}yA<z>", None)]);
}

#[test]
fn delete_objects_refusals() {
    malformed(parse_delete_objects(b""), "no root element");
    malformed(parse_delete_objects(b"<Delete></Delete>"), "no <Object>");
    malformed(parse_delete_objects(b"<Delete><Object><VersionId>v</VersionId></Object></Delete>"), "no <Key>");
    malformed(parse_delete_objects(b"<Delete><Object><Key>a</Key><Key>b</Key></Object></Delete>"), "more than one <Key>");
    malformed(parse_delete_objects(b"<Delete><Object><Key>a</Key></Object><Quiet>yes</Quiet></Delete>"), "not a boolean");
    malformed(parse_delete_objects(b"<Delete><Object><Key>a</Object></Delete>"), "not well-formed");
    malformed(parse_delete_objects(b"<Delete><Object><Key>a</Key></Object></Delete><Delete/>"), "after the root");
    malformed(parse_delete_objects(b"<Delete><Object><Key>a</Key></Object></Delete>junk"), "outside the root");
    malformed(parse_delete_objects(b"<Delete><Object><Key>&bogus;</Key></Object></Delete>"), "undefined entity");
    malformed(parse_delete_objects(b"<Delete><Object><Key>&#0;</Key></Object></Delete>"), "character reference");
    malformed(parse_delete_objects(b"<!DOCTYPE d [<!ENTITY e \"x\">]><Delete/>"), "document type");
    malformed(parse_delete_objects(b"<Delete><Object><Key>\xff</Key></Object></Delete>"), "not UTF-8");
    malformed(parse_delete_objects(b"<Objects><Object><Key>a</Key></Object></Objects>"), "expected <Delete>");
}

fn delete_body(count: usize) -> Vec<u8> {
    let mut body = String::from("<Delete>");
    for index in 0..count {
        body.push_str(&format!("<Object><Key>key-{index}</Key></Object>"));
    }
    body.push_str("</Delete>");
    body.into_bytes()
}

#[test]
fn delete_objects_count_limit() {
    let request = parse_delete_objects(&delete_body(DELETE_OBJECTS_MAX)).expect("1000 keys are allowed");
    assert_eq!(request.objects.len(), DELETE_OBJECTS_MAX);
    assert_eq!(request.objects[999].key, "key-999");
    malformed(parse_delete_objects(&delete_body(DELETE_OBJECTS_MAX + 1)), "at most 1000");
}

#[test]
fn largest_legal_delete_fits() {
    // 1000 keys of 1024 characters, each written as an entity.
    let key = "\"".repeat(1024);
    let mut body = String::from("<Delete>");
    for _ in 0..DELETE_OBJECTS_MAX {
        body.push_str(&format!("<Object><Key>{}</Key></Object>", key.replace('"', "&quot;")));
    }
    body.push_str("</Delete>");
    assert!(body.len() <= XML_BODY_BYTES_MAX);
    let request = parse_delete_objects(body.as_bytes()).expect("largest legal body");
    assert!(request.objects.iter().all(|object| object.key == key));
}

#[test]
fn limits_are_enforced() {
    let mut too_big = delete_body(1);
    too_big.resize(XML_BODY_BYTES_MAX + 1, b' ');
    let error = parse_delete_objects(&too_big).expect_err("over the size limit");
    assert_eq!(error.code, ErrorCode::MaxMessageLengthExceeded);
    assert!(error.message.contains("exceeds"));

    let deep = format!("<Delete>{}{}</Delete>", "<a>".repeat(XML_DEPTH_MAX), "</a>".repeat(XML_DEPTH_MAX));
    malformed(parse_delete_objects(deep.as_bytes()), "deeper than 16");

    let many = format!("<Delete>{}</Delete>", "<x/>".repeat(XML_ELEMENTS_MAX));
    malformed(parse_delete_objects(many.as_bytes()), "more than 100000 elements");
}

// ---------------------------------------------------------------------------------------------
// CompleteMultipartUpload

fn part(part_number: u32, etag: &str) -> CompletedPart {
    CompletedPart { part_number, etag: etag.into(), checksums: Checksums::default() }
}

#[test]
fn complete_multipart_aws_doc_body() {
    let body = br#"<CompleteMultipartUpload>
  <Part>
    <PartNumber>1</PartNumber>
    <ETag>"a54357aff0632cce46d942af68356b38"</ETag>
  </Part>
  <Part>
    <PartNumber>2</PartNumber>
    <ETag>"0c78aef83f66abc1fa1e8477f296d394"</ETag>
  </Part>
  <Part>
    <PartNumber>3</PartNumber>
    <ETag>"acbd18db4cc2f85cedef654fccc4a4d8"</ETag>
  </Part>
</CompleteMultipartUpload>"#;
    assert_eq!(
        parse_complete_multipart(body),
        Ok(vec![
            part(1, "a54357aff0632cce46d942af68356b38"),
            part(2, "0c78aef83f66abc1fa1e8477f296d394"),
            part(3, "acbd18db4cc2f85cedef654fccc4a4d8"),
        ])
    );
}

#[test]
fn complete_multipart_sdk_bodies_keep_client_order() {
    // aws-sdk (Java v2, Rust, JS v3): namespace, escaped quotes, checksums, ETag before PartNumber.
    let body = br#"<?xml version="1.0" encoding="UTF-8"?><CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Part><ETag>&quot;aaa&quot;</ETag><ChecksumCRC32>i9a4Ig==</ChecksumCRC32><PartNumber>2</PartNumber></Part><Part><ETag>bbb</ETag><ChecksumSHA256> x+y/z= </ChecksumSHA256><PartNumber> 1 </PartNumber></Part></CompleteMultipartUpload>"#;
    let parts = parse_complete_multipart(body).expect("SDK body");
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0].part_number, 2);
    assert_eq!(parts[0].etag, "aaa");
    assert_eq!(parts[0].checksums, Checksums { crc32: Some("i9a4Ig==".into()), ..Checksums::default() });
    assert_eq!(parts[1].part_number, 1);
    assert_eq!(parts[1].etag, "bbb");
    assert_eq!(parts[1].checksums.sha256.as_deref(), Some("x+y/z="));
}

#[test]
fn complete_multipart_refusals() {
    malformed(parse_complete_multipart(b"<CompleteMultipartUpload/>"), "no <Part>");
    malformed(
        parse_complete_multipart(b"<CompleteMultipartUpload><Part><ETag>a</ETag></Part></CompleteMultipartUpload>"),
        "no <PartNumber>",
    );
    malformed(
        parse_complete_multipart(b"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber></Part></CompleteMultipartUpload>"),
        "part 1 has no <ETag>",
    );
    for bad in ["x", "", "-1", "+1", "1.0", "4294967296", "1 2"] {
        let body = format!("<CompleteMultipartUpload><Part><PartNumber>{bad}</PartNumber><ETag>a</ETag></Part></CompleteMultipartUpload>");
        malformed(parse_complete_multipart(body.as_bytes()), "is not a part number");
    }
    let mut body = String::from("<CompleteMultipartUpload>");
    for number in 1..=COMPLETE_PARTS_MAX + 1 {
        body.push_str(&format!("<Part><PartNumber>{number}</PartNumber><ETag>\"e\"</ETag></Part>"));
    }
    body.push_str("</CompleteMultipartUpload>");
    malformed(parse_complete_multipart(body.as_bytes()), "at most 10000");
}

#[test]
fn largest_legal_complete_fits() {
    let mut body = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\n",
    );
    for number in 1..=COMPLETE_PARTS_MAX {
        body.push_str(&format!(
            "  <Part>\n    <ChecksumSHA256>{}</ChecksumSHA256>\n    <ETag>&quot;{:032x}&quot;</ETag>\n    <PartNumber>{number}</PartNumber>\n  </Part>\n",
            "A".repeat(44),
            number
        ));
    }
    body.push_str("</CompleteMultipartUpload>");
    assert!(body.len() <= XML_BODY_BYTES_MAX);
    let parts = parse_complete_multipart(body.as_bytes()).expect("largest legal body");
    assert_eq!(parts.len(), COMPLETE_PARTS_MAX);
    assert_eq!(parts[9999].part_number, 10_000);
    assert_eq!(parts[9999].etag, format!("{:032x}", 10_000));
}

#[test]
fn etag_quotes() {
    assert_eq!(strip_etag_quotes("\"abc\""), "abc");
    assert_eq!(strip_etag_quotes(" \"abc-2\" "), "abc-2");
    assert_eq!(strip_etag_quotes("abc"), "abc");
    assert_eq!(strip_etag_quotes("\"abc"), "\"abc");
    assert_eq!(strip_etag_quotes("\""), "\"");
}

// ---------------------------------------------------------------------------------------------
// PutBucketVersioning

#[test]
fn versioning_bodies() {
    let aws_doc = br#"<VersioningConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Status>Enabled</Status>
</VersioningConfiguration>"#;
    assert_eq!(
        parse_versioning_configuration(aws_doc),
        Ok(VersioningConfiguration { status: Some(VersioningStatus::Enabled), mfa_delete: None })
    );
    let suspended = b"<VersioningConfiguration><Status>Suspended</Status><MfaDelete>Disabled</MfaDelete></VersioningConfiguration>";
    assert_eq!(
        parse_versioning_configuration(suspended),
        Ok(VersioningConfiguration { status: Some(VersioningStatus::Suspended), mfa_delete: Some(false) })
    );
    assert_eq!(
        parse_versioning_configuration(b"<VersioningConfiguration/>"),
        Ok(VersioningConfiguration { status: None, mfa_delete: None })
    );
    malformed(parse_versioning_configuration(b"<VersioningConfiguration><Status>On</Status></VersioningConfiguration>"), "neither");
    malformed(parse_versioning_configuration(b""), "no root element");
}

#[test]
fn xml_error_becomes_s3_error() {
    let error = parse_delete_objects(b"<Delete/>").expect_err("no objects");
    let s3_error = s3front::error::S3Error::from(error.clone());
    assert_eq!(s3_error.code, ErrorCode::MalformedXML);
    assert_eq!(s3_error.message, error.message);
    assert_eq!(error.to_string(), format!("MalformedXML: {}", error.message));
}

#[test]
fn byte_order_mark_is_accepted() {
    let body = b"\xEF\xBB\xBF<?xml version=\"1.0\" encoding=\"UTF-8\"?><VersioningConfiguration><Status>Enabled</Status></VersioningConfiguration>";
    assert_eq!(
        parse_versioning_configuration(body),
        Ok(VersioningConfiguration { status: Some(VersioningStatus::Enabled), mfa_delete: None })
    );
}

// ---------------------------------------------------------------------------------------------
// Put{Object,Bucket}Tagging

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[test]
fn tagging_bodies() {
    let aws_doc = br#"<Tagging xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <TagSet>
    <Tag><Key>tag1</Key><Value>val1</Value></Tag>
    <Tag><Key> spaced key </Key><Value></Value></Tag>
    <Tag><Key>no value</Key><Value/></Tag>
    <Tag><Key>&lt;&amp;&gt;</Key><Value>&#x4F60;</Value></Tag>
  </TagSet>
</Tagging>"#;
    // In the order sent; values and keys keep their spaces; an empty value is "".
    assert_eq!(
        parse_tagging(aws_doc),
        Ok(pairs(&[("tag1", "val1"), (" spaced key ", ""), ("no value", ""), ("<&>", "你")]))
    );
    assert_eq!(parse_tagging(b"<Tagging><TagSet/></Tagging>"), Ok(Vec::new()));
    malformed(parse_tagging(b"<Tagging/>"), "no <TagSet>");
    malformed(parse_tagging(b"<Tagging><TagSet/><TagSet/></Tagging>"), "more than one <TagSet>");
    malformed(parse_tagging(b"<Tagging><TagSet><Tag><Value>v</Value></Tag></TagSet></Tagging>"), "no <Key>");
    malformed(parse_tagging(b"<Tagging><TagSet><Tag><Key>a</Key><Key>b</Key></Tag></TagSet></Tagging>"), "more than one <Key>");
    malformed(parse_tagging(b"<Other/>"), "expected <Tagging>");
    // A body listing more tags than any set may hold is refused as a tag error, unread.
    let many = format!("<Tagging><TagSet>{}</TagSet></Tagging>", "<Tag><Key>k</Key></Tag>".repeat(TAGGING_TAGS_READ_MAX + 1));
    assert_eq!(parse_tagging(many.as_bytes()).map_err(|e| e.code), Err(ErrorCode::InvalidTag));
}

// ---------------------------------------------------------------------------------------------
// PutBucketCors

#[test]
fn cors_bodies() {
    let aws_doc = br#"<CORSConfiguration>
 <CORSRule>
   <AllowedOrigin>http://www.example.com</AllowedOrigin>
   <AllowedMethod>PUT</AllowedMethod>
   <AllowedMethod>POST</AllowedMethod>
   <AllowedHeader>*</AllowedHeader>
   <MaxAgeSeconds>3000</MaxAgeSeconds>
   <ExposeHeader>x-amz-server-side-encryption</ExposeHeader>
 </CORSRule>
 <CORSRule>
   <ID>any</ID>
   <AllowedOrigin>*</AllowedOrigin>
   <AllowedMethod>GET</AllowedMethod>
 </CORSRule>
</CORSConfiguration>"#;
    let rules = parse_cors_configuration(aws_doc).expect("AWS's example parses");
    assert_eq!(rules.len(), 2);
    assert_eq!(rules[0].allowed_origins, vec!["http://www.example.com"]);
    assert_eq!(rules[0].allowed_methods, vec!["PUT", "POST"]);
    assert_eq!(rules[0].allowed_headers, vec!["*"]);
    assert_eq!(rules[0].max_age_seconds, Some(3000));
    assert_eq!(rules[0].expose_headers, vec!["x-amz-server-side-encryption"]);
    assert_eq!((rules[1].id.as_deref(), rules[1].max_age_seconds), (Some("any"), None));
    assert!(s3front::cors::check_rules(&rules).is_ok());
    malformed(parse_cors_configuration(b"<CORSConfiguration><CORSRule><MaxAgeSeconds>soon</MaxAgeSeconds></CORSRule></CORSConfiguration>"), "MaxAgeSeconds");
    malformed(parse_cors_configuration(b"<Other/>"), "expected <CORSConfiguration>");
    // Parsed, then refused by the checks: no rule, no method.
    assert!(s3front::cors::check_rules(&parse_cors_configuration(b"<CORSConfiguration/>").expect("parses")).is_err());
    let no_method = parse_cors_configuration(b"<CORSConfiguration><CORSRule><AllowedOrigin>*</AllowedOrigin></CORSRule></CORSConfiguration>");
    assert!(s3front::cors::check_rules(&no_method.expect("parses")).is_err());
}

// ---------------------------------------------------------------------------------------------
// Put{Bucket,Object}Acl

#[test]
fn access_control_policy_bodies() {
    use s3front::acl::{GRANTS_MAX, Grant, Grantee, Permission};
    // As boto3 sends it: the owner, then grants with xsi:type attributes.
    let body = br#"<?xml version="1.0" encoding="UTF-8"?>
<AccessControlPolicy xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Owner><ID>alice</ID><DisplayName>alice</DisplayName></Owner>
  <AccessControlList>
    <Grant><Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="CanonicalUser"><ID>alice</ID></Grantee><Permission>FULL_CONTROL</Permission></Grant>
    <Grant><Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="CanonicalUser"><ID> bob </ID><DisplayName>Bob</DisplayName></Grantee><Permission> READ_ACP </Permission></Grant>
    <Grant><Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="Group"><URI>http://acs.amazonaws.com/groups/global/AllUsers</URI></Grantee><Permission>READ</Permission></Grant>
    <Grant><Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="Group"><URI>http://acs.amazonaws.com/groups/global/AllUsers</URI></Grantee><Permission>READ</Permission></Grant>
  </AccessControlList>
</AccessControlPolicy>"#;
    assert_eq!(
        parse_access_control_policy(body).expect("valid"),
        vec![
            Grant::new(Grantee::User("alice".into()), Permission::FullControl),
            Grant::new(Grantee::User("bob".into()), Permission::ReadAcp),
            Grant::new(Grantee::AllUsers, Permission::Read),
        ],
        "in order, trimmed, the repeated grant once"
    );
    // No grants at all is an ACL (nobody but the owner's implicit ACP rights).
    let empty = b"<AccessControlPolicy><Owner><ID>alice</ID></Owner><AccessControlList/></AccessControlPolicy>";
    assert_eq!(parse_access_control_policy(empty).expect("valid"), Vec::new());

    let refused = |body: &str, code: ErrorCode, part: &str| {
        let e = parse_access_control_policy(body.as_bytes()).expect_err(body);
        assert_eq!(e.code, code, "{body}: {}", e.message);
        assert!(e.message.contains(part), "{body}: message {:?} lacks {part:?}", e.message);
    };
    let grant = |grantee: &str, permission: &str| {
        format!("<AccessControlPolicy><AccessControlList><Grant><Grantee>{grantee}</Grantee><Permission>{permission}</Permission></Grant></AccessControlList></AccessControlPolicy>")
    };
    refused("<AccessControlPolicy/>", ErrorCode::MalformedACLError, "no <AccessControlList>");
    refused(&grant("<ID>bob</ID>", "READ_ALL"), ErrorCode::MalformedACLError, "READ_ALL");
    refused(&grant("<DisplayName>bob</DisplayName>", "READ"), ErrorCode::MalformedACLError, "no <ID>");
    refused(&grant("<ID>bob</ID><URI>x</URI>", "READ"), ErrorCode::MalformedACLError, "more than one");
    refused(&grant("<URI>http://example.com/all</URI>", "READ"), ErrorCode::InvalidArgument, "http://example.com/all");
    refused(&grant("<EmailAddress>a@b.c</EmailAddress>", "READ"), ErrorCode::UnresolvableGrantByEmailAddress, "a@b.c");
    refused(&grant("<ID></ID>", "READ"), ErrorCode::InvalidArgument, "empty ID");
    refused("<Tagging/>", ErrorCode::MalformedXML, "expected <AccessControlPolicy>");
    let many: String = (0..=GRANTS_MAX).map(|i| format!("<Grant><Grantee><ID>u{i}</ID></Grantee><Permission>READ</Permission></Grant>")).collect();
    refused(&format!("<AccessControlPolicy><AccessControlList>{many}</AccessControlList></AccessControlPolicy>"), ErrorCode::MalformedACLError, "101 grants");
}

// ---------------------------------------------------------------------------------------------
// PutBucketLifecycleConfiguration

#[test]
fn lifecycle_bodies() {
    use s3front::lifecycle::{DAY_MS, Expiration, FilterForm};
    // As boto3 and s3-tests send it: the deprecated rule-level Prefix, a Filter with And, an
    // empty Filter, a date, and actions that only matter with versioning.
    let body = br#"<LifecycleConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Rule><ID>legacy</ID><Prefix>test1/</Prefix><Status>Enabled</Status><Expiration><Days>3</Days></Expiration></Rule>
  <Rule><ID>and</ID><Filter><And><Prefix>logs/</Prefix><Tag><Key>a</Key><Value>b</Value></Tag><ObjectSizeLessThan>100</ObjectSizeLessThan></And></Filter>
    <Status>Disabled</Status><Expiration><Date>2030-01-01T00:00:00.000Z</Date></Expiration></Rule>
  <Rule><ID>versions</ID><Filter/><Status>Enabled</Status><Expiration><ExpiredObjectDeleteMarker>true</ExpiredObjectDeleteMarker></Expiration>
    <NoncurrentVersionExpiration><NoncurrentDays>2</NoncurrentDays></NoncurrentVersionExpiration>
    <AbortIncompleteMultipartUpload><DaysAfterInitiation>1</DaysAfterInitiation></AbortIncompleteMultipartUpload></Rule>
  <Rule><Status>Enabled</Status><Expiration><Date>2030-01-02</Date></Expiration></Rule>
</LifecycleConfiguration>"#;
    let rules = parse_lifecycle_configuration(body).expect("valid");
    assert_eq!(rules.len(), 4);
    assert_eq!((rules[0].form, rules[0].filter.prefix.as_deref(), rules[0].expiration), (FilterForm::Legacy, Some("test1/"), Some(Expiration::Days(3))));
    assert_eq!(rules[1].filter.tags, vec![("a".to_string(), "b".to_string())]);
    assert_eq!((rules[1].filter.size_less_than, rules[1].enabled), (Some(100), false));
    assert_eq!(rules[1].expiration, Some(Expiration::DateMs(1_893_456_000_000)));
    assert_eq!((rules[2].form, rules[2].expired_object_delete_marker, rules[2].noncurrent_days), (FilterForm::Filter, Some(true), Some(2)));
    assert_eq!(rules[2].abort_incomplete_upload_days, Some(1));
    assert_eq!((rules[3].form, rules[3].id.as_str()), (FilterForm::None, ""), "an ID is given later (lifecycle::check)");
    assert_eq!(rules[3].expiration, Some(Expiration::DateMs(1_893_456_000_000 + DAY_MS)));
    // What GetBucketLifecycleConfiguration writes reads back the same.
    assert_eq!(parse_lifecycle_configuration(&lifecycle_configuration(&rules)).expect("own output"), rules);

    let refused = |rule: &str, code: ErrorCode, part: &str| {
        let body = format!("<LifecycleConfiguration><Rule><ID>r</ID>{rule}</Rule></LifecycleConfiguration>");
        let e = parse_lifecycle_configuration(body.as_bytes()).expect_err(rule);
        assert_eq!(e.code, code, "{rule}: {}", e.message);
        assert!(e.message.contains(part), "{rule}: message {:?} lacks {part:?}", e.message);
    };
    let days = "<Expiration><Days>1</Days></Expiration>";
    refused(&format!("<Status>enabled</Status>{days}"), ErrorCode::MalformedXML, "neither Enabled nor Disabled");
    refused(days, ErrorCode::MalformedXML, "no <Status>");
    refused(&format!("<Status>Enabled</Status><Prefix>a</Prefix><Filter/>{days}"), ErrorCode::MalformedXML, "both <Prefix> and <Filter>");
    refused("<Status>Enabled</Status><Expiration><Days>1</Days><Date>2030-01-01</Date></Expiration>", ErrorCode::MalformedXML, "both <Days> and <Date>");
    refused("<Status>Enabled</Status><Expiration><Date>20200101</Date></Expiration>", ErrorCode::InvalidArgument, "20200101");
    refused("<Status>Enabled</Status><Expiration><Date>2030-01-01T12:00:00Z</Date></Expiration>", ErrorCode::InvalidArgument, "midnight");
    refused("<Status>Enabled</Status><Expiration><Days>-1</Days></Expiration>", ErrorCode::InvalidArgument, "-1");
    refused(&format!("<Status>Enabled</Status><Filter><Prefix>a</Prefix><Tag><Key>k</Key></Tag></Filter>{days}"), ErrorCode::MalformedXML, "<And>");
    refused(&format!("<Status>Enabled</Status>{days}<Transition><Days>1</Days><StorageClass>GLACIER</StorageClass></Transition>"), ErrorCode::NotImplemented, "storage class");
    refused("<Status>Enabled</Status><Transition><Date>20220927</Date><StorageClass>GLACIER</StorageClass></Transition>", ErrorCode::InvalidArgument, "20220927");
    refused("<Status>Enabled</Status><Expiration><Days>1</Days><ExpiredObjectDeleteMarker>true</ExpiredObjectDeleteMarker></Expiration>", ErrorCode::MalformedXML, "ExpiredObjectDeleteMarker");
}

#[test]
fn public_access_block_bodies() {
    let all = br#"<PublicAccessBlockConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><BlockPublicAcls>true</BlockPublicAcls>
<IgnorePublicAcls>false</IgnorePublicAcls><BlockPublicPolicy>TRUE</BlockPublicPolicy><RestrictPublicBuckets>true</RestrictPublicBuckets></PublicAccessBlockConfiguration>"#;
    let b = parse_public_access_block(all).expect("valid");
    assert_eq!((b.block_public_acls, b.ignore_public_acls, b.block_public_policy, b.restrict_public_buckets), (true, false, true, true));
    assert_eq!(parse_public_access_block(b"<PublicAccessBlockConfiguration/>").expect("valid"), Default::default(), "left out: false");
    malformed(parse_public_access_block(b"<PublicAccessBlockConfiguration><BlockPublicAcls>yes</BlockPublicAcls></PublicAccessBlockConfiguration>"), "not a boolean");
}
