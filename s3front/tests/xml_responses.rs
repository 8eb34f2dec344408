//! Exact output of every response writer, compared with the bodies S3 documents.

use s3front::error::ErrorCode;
use s3front::xml::*;

const DECL: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
const NS: &str = "xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"";
/// 2009-10-12T17:50:30.000Z, the timestamp in AWS's examples.
const T_MS: u64 = 1_255_369_830_000;

fn check(body: Vec<u8>, expected: &str) {
    let body = String::from_utf8(body).expect("writers produce UTF-8");
    assert_eq!(body, format!("{DECL}{expected}"));
}

fn owner() -> Owner {
    Owner { id: "75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a".into(), display_name: "webfile".into() }
}

const OWNER_XML: &str = "<ID>75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a</ID><DisplayName>webfile</DisplayName>";

fn object(key: &str) -> ObjectEntry {
    ObjectEntry {
        key: key.into(),
        last_modified_ms: T_MS,
        etag: "fba9dede5f27731c9771645a39863328".into(),
        size_bytes: 434_234,
        storage_class: "STANDARD",
        owner: None,
        checksum_algorithm: None,
        checksum_type: None,
    }
}

fn contents_xml(key_xml: &str) -> String {
    format!(
        "<Contents><Key>{key_xml}</Key><LastModified>2009-10-12T17:50:30.000Z</LastModified>\
         <ETag>&quot;fba9dede5f27731c9771645a39863328&quot;</ETag><Size>434234</Size><StorageClass>STANDARD</StorageClass></Contents>"
    )
}

fn page() -> ListPage {
    ListPage {
        bucket: "bucket".into(),
        prefix: String::new(),
        delimiter: None,
        max_keys: 1000,
        encoding_type: None,
        is_truncated: false,
        contents: vec![object("my-image.jpg")],
        common_prefixes: vec![],
    }
}

#[test]
fn timestamps() {
    assert_eq!(format_timestamp_ms(0), "1970-01-01T00:00:00.000Z");
    assert_eq!(format_timestamp_ms(T_MS), "2009-10-12T17:50:30.000Z");
    assert_eq!(format_timestamp_ms(1_795_574_491_007), "2026-11-25T02:41:31.007Z");
    assert_eq!(format_timestamp_ms(u64::MAX), "9999-12-31T23:59:59.999Z");
    assert_eq!(parse_timestamp_ms("2026-11-25T02:41:31.007Z"), Some(1_795_574_491_007));
    assert_eq!(parse_timestamp_ms("2026-11-25T02:41:31Z"), Some(1_795_574_491_000));
    assert_eq!(parse_timestamp_ms("1969-12-31T23:59:59.000Z"), None);
    assert_eq!(parse_timestamp_ms("yesterday"), None);
}

#[test]
fn url_encoding_matches_s3() {
    assert_eq!(url_encode_name("photos/2006/February/"), "photos/2006/February/");
    assert_eq!(url_encode_name("test_file(3).png"), "test_file%283%29.png");
    assert_eq!(url_encode_name("a b+c~d*e-f"), "a%20b%2Bc%7Ed*e-f");
    assert_eq!(url_encode_name("\u{1}é"), "%01%C3%A9");
    assert_eq!(url_encode_name("<&>"), "%3C%26%3E");
}

#[test]
fn list_all_my_buckets_body() {
    let result = ListAllMyBuckets {
        owner: owner(),
        buckets: vec![
            BucketEntry { name: "quotes".into(), creation_date_ms: T_MS },
            BucketEntry { name: "samples".into(), creation_date_ms: T_MS + 1 },
        ],
        prefix: None,
        continuation_token: None,
    };
    check(
        list_all_my_buckets(&result),
        &format!(
            "<ListAllMyBucketsResult {NS}><Owner>{OWNER_XML}</Owner><Buckets>\
             <Bucket><Name>quotes</Name><CreationDate>2009-10-12T17:50:30.000Z</CreationDate></Bucket>\
             <Bucket><Name>samples</Name><CreationDate>2009-10-12T17:50:30.001Z</CreationDate></Bucket>\
             </Buckets></ListAllMyBucketsResult>"
        ),
    );
    let page = ListAllMyBuckets { prefix: Some("s".into()), continuation_token: Some("c2FtcGxlcw".into()), ..result };
    check(
        list_all_my_buckets(&page),
        &format!(
            "<ListAllMyBucketsResult {NS}><Owner>{OWNER_XML}</Owner><Buckets>\
             <Bucket><Name>quotes</Name><CreationDate>2009-10-12T17:50:30.000Z</CreationDate></Bucket>\
             <Bucket><Name>samples</Name><CreationDate>2009-10-12T17:50:30.001Z</CreationDate></Bucket>\
             </Buckets><ContinuationToken>c2FtcGxlcw</ContinuationToken><Prefix>s</Prefix></ListAllMyBucketsResult>"
        ),
    );
}

#[test]
fn list_objects_v2_body() {
    let result = ListObjectsV2 { page: page(), continuation_token: None, next_continuation_token: None, start_after: None };
    check(
        list_objects_v2(&result),
        &format!(
            "<ListBucketResult {NS}><Name>bucket</Name><Prefix></Prefix><MaxKeys>1000</MaxKeys><KeyCount>1</KeyCount>\
             <IsTruncated>false</IsTruncated>{}</ListBucketResult>",
            contents_xml("my-image.jpg")
        ),
    );
}

#[test]
fn list_objects_v2_truncated_with_delimiter_and_owner() {
    let mut page = page();
    page.prefix = "photos/".into();
    page.delimiter = Some("/".into());
    page.is_truncated = true;
    page.contents[0].key = "photos/a.jpg".into();
    page.contents[0].owner = Some(owner());
    page.contents[0].checksum_algorithm = Some("CRC32");
    page.contents[0].checksum_type = Some(ChecksumType::FullObject);
    page.common_prefixes = vec!["photos/2006/".into()];
    let result = ListObjectsV2 {
        page,
        continuation_token: Some("1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=".into()),
        next_continuation_token: Some("next&token".into()),
        start_after: Some("photos/0".into()),
    };
    check(
        list_objects_v2(&result),
        &format!(
            "<ListBucketResult {NS}><Name>bucket</Name><Prefix>photos/</Prefix><MaxKeys>1000</MaxKeys><Delimiter>/</Delimiter>\
             <KeyCount>2</KeyCount><ContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</ContinuationToken>\
             <NextContinuationToken>next&amp;token</NextContinuationToken><StartAfter>photos/0</StartAfter>\
             <IsTruncated>true</IsTruncated>\
             <Contents><Key>photos/a.jpg</Key><LastModified>2009-10-12T17:50:30.000Z</LastModified>\
             <ETag>&quot;fba9dede5f27731c9771645a39863328&quot;</ETag><ChecksumAlgorithm>CRC32</ChecksumAlgorithm>\
             <ChecksumType>FULL_OBJECT</ChecksumType><Size>434234</Size><StorageClass>STANDARD</StorageClass>\
             <Owner>{OWNER_XML}</Owner></Contents>\
             <CommonPrefixes><Prefix>photos/2006/</Prefix></CommonPrefixes></ListBucketResult>"
        ),
    );
}

#[test]
fn list_objects_v2_url_encoding_covers_key_prefix_delimiter_start_after_common_prefixes() {
    let mut page = page();
    page.prefix = "a b/".into();
    page.delimiter = Some("+".into());
    page.encoding_type = Some(EncodingType::Url);
    page.contents[0].key = "a b/\u{1}(x)".into();
    page.common_prefixes = vec!["a b/c d+".into()];
    let result =
        ListObjectsV2 { page, continuation_token: Some("tok en".into()), next_continuation_token: None, start_after: Some("a b/0".into()) };
    check(
        list_objects_v2(&result),
        &format!(
            "<ListBucketResult {NS}><Name>bucket</Name><Prefix>a%20b/</Prefix><MaxKeys>1000</MaxKeys><Delimiter>%2B</Delimiter>\
             <EncodingType>url</EncodingType><KeyCount>2</KeyCount><ContinuationToken>tok en</ContinuationToken>\
             <StartAfter>a%20b/0</StartAfter><IsTruncated>false</IsTruncated>{}\
             <CommonPrefixes><Prefix>a%20b/c%20d%2B</Prefix></CommonPrefixes></ListBucketResult>",
            contents_xml("a%20b/%01%28x%29")
        ),
    );
}

#[test]
fn keys_are_escaped_and_forbidden_characters_become_references() {
    let mut page = page();
    page.contents[0].key = "<a>&'\"\r\n\t\u{1}\u{1f}\u{fffe}é".into();
    let result = ListObjectsV2 { page, continuation_token: None, next_continuation_token: None, start_after: None };
    let body = String::from_utf8(list_objects_v2(&result)).expect("UTF-8");
    let expected_key = "&lt;a&gt;&amp;&apos;&quot;&#13;\n\t&#x1;&#x1F;&#xFFFE;é";
    assert!(body.contains(&contents_xml(expected_key)), "{body}");
}

#[test]
fn list_objects_v1_body() {
    let mut page = page();
    page.delimiter = Some("/".into());
    page.is_truncated = true;
    page.encoding_type = Some(EncodingType::Url);
    // v1 echoes its Prefix as sent even under encoding-type=url (botocore decodes only the
    // markers, keys and common prefixes of a v1 listing; s3-tests' `prefix_unreadable`).
    page.prefix = "m y\n".into();
    let result = ListObjectsV1 { page, marker: "a b".into(), next_marker: Some("my-image.jpg".into()) };
    check(
        list_objects_v1(&result),
        &format!(
            "<ListBucketResult {NS}><Name>bucket</Name><Prefix>m y\n</Prefix><Marker>a%20b</Marker><NextMarker>my-image.jpg</NextMarker>\
             <MaxKeys>1000</MaxKeys><Delimiter>/</Delimiter><EncodingType>url</EncodingType><IsTruncated>true</IsTruncated>{}\
             </ListBucketResult>",
            contents_xml("my-image.jpg")
        ),
    );
}

#[test]
fn list_versions_body() {
    let result = ListVersions {
        bucket: "bucket".into(),
        prefix: "my".into(),
        key_marker: String::new(),
        version_id_marker: String::new(),
        next_key_marker: None,
        next_version_id_marker: None,
        max_keys: 5,
        delimiter: None,
        encoding_type: None,
        is_truncated: false,
        entries: vec![
            VersionListEntry::Version(VersionEntry {
                key: "my-image.jpg".into(),
                version_id: "null".into(),
                is_latest: true,
                last_modified_ms: T_MS,
                etag: "fba9dede5f27731c9771645a39863328".into(),
                size_bytes: 434_234,
                storage_class: "STANDARD",
                owner: owner(),
                checksum_algorithm: None,
                checksum_type: None,
            }),
            VersionListEntry::DeleteMarker(DeleteMarkerEntry {
                key: "my-second-image.jpg".into(),
                version_id: "03jpff543dhffds434rfdsFDN943fdsFkdmqnh892".into(),
                is_latest: false,
                last_modified_ms: T_MS,
                owner: owner(),
            }),
        ],
        common_prefixes: vec![],
    };
    check(
        list_versions(&result),
        &format!(
            "<ListVersionsResult {NS}><Name>bucket</Name><Prefix>my</Prefix><KeyMarker></KeyMarker><VersionIdMarker></VersionIdMarker>\
             <MaxKeys>5</MaxKeys><IsTruncated>false</IsTruncated>\
             <Version><Key>my-image.jpg</Key><VersionId>null</VersionId><IsLatest>true</IsLatest>\
             <LastModified>2009-10-12T17:50:30.000Z</LastModified><ETag>&quot;fba9dede5f27731c9771645a39863328&quot;</ETag>\
             <Size>434234</Size><StorageClass>STANDARD</StorageClass><Owner>{OWNER_XML}</Owner></Version>\
             <DeleteMarker><Key>my-second-image.jpg</Key><VersionId>03jpff543dhffds434rfdsFDN943fdsFkdmqnh892</VersionId>\
             <IsLatest>false</IsLatest><LastModified>2009-10-12T17:50:30.000Z</LastModified><Owner>{OWNER_XML}</Owner></DeleteMarker>\
             </ListVersionsResult>"
        ),
    );
}

#[test]
fn list_versions_markers_and_encoding() {
    let result = ListVersions {
        bucket: "bucket".into(),
        prefix: "p q".into(),
        key_marker: "k m".into(),
        version_id_marker: "null".into(),
        next_key_marker: Some("n k".into()),
        next_version_id_marker: Some("null".into()),
        max_keys: 1,
        delimiter: Some("/".into()),
        encoding_type: Some(EncodingType::Url),
        is_truncated: true,
        entries: vec![],
        common_prefixes: vec!["p q/".into()],
    };
    check(
        list_versions(&result),
        &format!(
            "<ListVersionsResult {NS}><Name>bucket</Name><Prefix>p%20q</Prefix><KeyMarker>k%20m</KeyMarker>\
             <VersionIdMarker>null</VersionIdMarker><NextKeyMarker>n%20k</NextKeyMarker><NextVersionIdMarker>null</NextVersionIdMarker>\
             <MaxKeys>1</MaxKeys><Delimiter>/</Delimiter><EncodingType>url</EncodingType><IsTruncated>true</IsTruncated>\
             <CommonPrefixes><Prefix>p%20q/</Prefix></CommonPrefixes></ListVersionsResult>"
        ),
    );
}

#[test]
fn location_constraint_bodies() {
    check(location_constraint("us-east-1"), &format!("<LocationConstraint {NS}/>"));
    check(location_constraint(""), &format!("<LocationConstraint {NS}/>"));
    check(location_constraint("eu-west-1"), &format!("<LocationConstraint {NS}>eu-west-1</LocationConstraint>"));
}

#[test]
fn versioning_configuration_bodies() {
    check(versioning_configuration(None), &format!("<VersioningConfiguration {NS}/>"));
    check(
        versioning_configuration(Some(VersioningStatus::Enabled)),
        &format!("<VersioningConfiguration {NS}><Status>Enabled</Status></VersioningConfiguration>"),
    );
    check(
        versioning_configuration(Some(VersioningStatus::Suspended)),
        &format!("<VersioningConfiguration {NS}><Status>Suspended</Status></VersioningConfiguration>"),
    );
}

#[test]
fn access_control_policy_body() {
    use s3front::acl::{Grant, Grantee, Permission};
    const XSI: &str = "xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"";
    let o = owner();
    check(
        access_control_policy(&o, &s3front::acl::private(&o.id)),
        &format!(
            "<AccessControlPolicy {NS}><Owner>{OWNER_XML}</Owner><AccessControlList><Grant>\
             <Grantee {XSI} xsi:type=\"CanonicalUser\"><ID>{id}</ID><DisplayName>{id}</DisplayName></Grantee>\
             <Permission>FULL_CONTROL</Permission></Grant></AccessControlList></AccessControlPolicy>",
            id = o.id
        ),
    );
    let groups = [Grant::new(Grantee::AllUsers, Permission::Read), Grant::new(Grantee::AuthenticatedUsers, Permission::WriteAcp)];
    check(
        access_control_policy(&o, &groups),
        &format!(
            "<AccessControlPolicy {NS}><Owner>{OWNER_XML}</Owner><AccessControlList>\
             <Grant><Grantee {XSI} xsi:type=\"Group\"><URI>http://acs.amazonaws.com/groups/global/AllUsers</URI></Grantee>\
             <Permission>READ</Permission></Grant>\
             <Grant><Grantee {XSI} xsi:type=\"Group\"><URI>http://acs.amazonaws.com/groups/global/AuthenticatedUsers</URI></Grantee>\
             <Permission>WRITE_ACP</Permission></Grant></AccessControlList></AccessControlPolicy>"
        ),
    );
    check(access_control_policy(&o, &[]), &format!("<AccessControlPolicy {NS}><Owner>{OWNER_XML}</Owner><AccessControlList></AccessControlList></AccessControlPolicy>"));
    // Listed as Ceph lists them: groups first, then users by ID, equal IDs in the order given.
    let user = |id: &str, p| Grant::new(Grantee::User(id.into()), p);
    let mixed = [
        user("main", Permission::FullControl),
        Grant::new(Grantee::AllUsers, Permission::Read),
        user("alt", Permission::Write),
        user("alt", Permission::Read),
        Grant::new(Grantee::AllUsers, Permission::Write),
    ];
    let body = String::from_utf8(access_control_policy(&o, &mixed)).expect("UTF-8");
    let order: Vec<&str> = body.split("<Grant>").skip(1).map(|g| g.split("</Grant>").next().unwrap_or_default()).collect();
    let brief: Vec<String> = order
        .iter()
        .map(|g| {
            let who = g.split("<ID>").nth(1).or_else(|| g.split("groups/global/").nth(1)).and_then(|r| r.split('<').next()).unwrap_or("?");
            let what = g.split("<Permission>").nth(1).and_then(|r| r.split('<').next()).unwrap_or("?");
            format!("{who}:{what}")
        })
        .collect();
    assert_eq!(brief, ["AllUsers:READ", "AllUsers:WRITE", "alt:WRITE", "alt:READ", "main:FULL_CONTROL"]);
}

#[test]
fn copy_result_bodies() {
    let plain = CopyResult { last_modified_ms: T_MS, etag: "9b2cf535f27731c974343645a3985328".into(), ..CopyResult::default() };
    check(
        copy_object_result(&plain),
        &format!(
            "<CopyObjectResult {NS}><LastModified>2009-10-12T17:50:30.000Z</LastModified>\
             <ETag>&quot;9b2cf535f27731c974343645a3985328&quot;</ETag></CopyObjectResult>"
        ),
    );
    let with_checksums = CopyResult {
        checksum_type: Some(ChecksumType::FullObject),
        checksums: Checksums { crc32: Some("i9a4Ig==".into()), sha256: Some("x+y/z=".into()), ..Checksums::default() },
        ..plain
    };
    check(
        copy_object_result(&with_checksums),
        &format!(
            "<CopyObjectResult {NS}><LastModified>2009-10-12T17:50:30.000Z</LastModified>\
             <ETag>&quot;9b2cf535f27731c974343645a3985328&quot;</ETag><ChecksumType>FULL_OBJECT</ChecksumType>\
             <ChecksumCRC32>i9a4Ig==</ChecksumCRC32><ChecksumSHA256>x+y/z=</ChecksumSHA256></CopyObjectResult>"
        ),
    );
    let part = CopyResult { checksum_type: None, ..with_checksums };
    check(
        copy_part_result(&part),
        &format!(
            "<CopyPartResult {NS}><LastModified>2009-10-12T17:50:30.000Z</LastModified>\
             <ETag>&quot;9b2cf535f27731c974343645a3985328&quot;</ETag>\
             <ChecksumCRC32>i9a4Ig==</ChecksumCRC32><ChecksumSHA256>x+y/z=</ChecksumSHA256></CopyPartResult>"
        ),
    );
}

#[test]
fn initiate_multipart_upload_body() {
    check(
        initiate_multipart_upload_result("example-bucket", "example-object", "VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA"),
        &format!(
            "<InitiateMultipartUploadResult {NS}><Bucket>example-bucket</Bucket><Key>example-object</Key>\
             <UploadId>VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA</UploadId></InitiateMultipartUploadResult>"
        ),
    );
}

#[test]
fn complete_multipart_upload_body() {
    let result = CompleteMultipartUploadResult {
        location: "http://Example-Bucket.s3.region.amazonaws.com/Example-Object".into(),
        bucket: "Example-Bucket".into(),
        key: "Example-Object".into(),
        etag: "3858f62230ac3c915f300c664312c11f-9".into(),
        checksums: Checksums { crc32c: Some("AAAAAA==-9".into()), ..Checksums::default() },
        checksum_type: Some(ChecksumType::Composite),
    };
    check(
        complete_multipart_upload_result(&result),
        &format!(
            "<CompleteMultipartUploadResult {NS}><Location>http://Example-Bucket.s3.region.amazonaws.com/Example-Object</Location>\
             <Bucket>Example-Bucket</Bucket><Key>Example-Object</Key><ETag>&quot;3858f62230ac3c915f300c664312c11f-9&quot;</ETag>\
             <ChecksumCRC32C>AAAAAA==-9</ChecksumCRC32C><ChecksumType>COMPOSITE</ChecksumType></CompleteMultipartUploadResult>"
        ),
    );
}

#[test]
fn list_parts_body() {
    let result = ListParts {
        bucket: "example-bucket".into(),
        key: "example-object".into(),
        upload_id: "XXBsb2FkIElEIGZvciBlbHZpbmcncyVcdS1tb3ZpZS5tMnRzEEEwbG9hZA".into(),
        initiator: owner(),
        owner: owner(),
        storage_class: "STANDARD",
        part_number_marker: 1,
        next_part_number_marker: 3,
        max_parts: 2,
        is_truncated: true,
        checksum_algorithm: None,
        checksum_type: None,
        parts: vec![PartEntry {
            part_number: 2,
            last_modified_ms: T_MS,
            etag: "7778aef83f66abc1fa1e8477f296d394".into(),
            size_bytes: 10_485_760,
            checksums: Checksums { crc64nvme: Some("AAAAAAAAAAA=".into()), ..Checksums::default() },
        }],
    };
    check(
        list_parts(&result),
        &format!(
            "<ListPartsResult {NS}><Bucket>example-bucket</Bucket><Key>example-object</Key>\
             <UploadId>XXBsb2FkIElEIGZvciBlbHZpbmcncyVcdS1tb3ZpZS5tMnRzEEEwbG9hZA</UploadId>\
             <Initiator>{OWNER_XML}</Initiator><Owner>{OWNER_XML}</Owner><StorageClass>STANDARD</StorageClass>\
             <PartNumberMarker>1</PartNumberMarker><NextPartNumberMarker>3</NextPartNumberMarker><MaxParts>2</MaxParts>\
             <IsTruncated>true</IsTruncated><Part><PartNumber>2</PartNumber><LastModified>2009-10-12T17:50:30.000Z</LastModified>\
             <ETag>&quot;7778aef83f66abc1fa1e8477f296d394&quot;</ETag><Size>10485760</Size>\
             <ChecksumCRC64NVME>AAAAAAAAAAA=</ChecksumCRC64NVME></Part></ListPartsResult>"
        ),
    );
}

#[test]
fn list_multipart_uploads_body() {
    let result = ListMultipartUploads {
        bucket: "bucket".into(),
        key_marker: String::new(),
        upload_id_marker: String::new(),
        next_key_marker: Some("my movie.m2ts".into()),
        next_upload_id_marker: Some("YW55IGlkZWEgd2h5IGVsdmluZydzIHVwbG9hZCBmYWlsZWQ".into()),
        prefix: None,
        delimiter: Some("/".into()),
        max_uploads: 3,
        encoding_type: Some(EncodingType::Url),
        is_truncated: true,
        uploads: vec![UploadEntry {
            key: "my movie.m2ts".into(),
            upload_id: "VXBsb2FkIElEIGZvciBlbHZpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA".into(),
            initiator: owner(),
            owner: owner(),
            storage_class: "STANDARD",
            initiated_ms: T_MS,
            checksum_algorithm: Some("SHA256"),
        }],
        common_prefixes: vec!["photos/".into()],
    };
    check(
        list_multipart_uploads(&result),
        &format!(
            "<ListMultipartUploadsResult {NS}><Bucket>bucket</Bucket><KeyMarker></KeyMarker><UploadIdMarker></UploadIdMarker>\
             <NextKeyMarker>my%20movie.m2ts</NextKeyMarker><NextUploadIdMarker>YW55IGlkZWEgd2h5IGVsdmluZydzIHVwbG9hZCBmYWlsZWQ</NextUploadIdMarker>\
             <Delimiter>/</Delimiter><MaxUploads>3</MaxUploads><EncodingType>url</EncodingType><IsTruncated>true</IsTruncated>\
             <Upload><Key>my%20movie.m2ts</Key><UploadId>VXBsb2FkIElEIGZvciBlbHZpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA</UploadId>\
             <Initiator>{OWNER_XML}</Initiator><Owner>{OWNER_XML}</Owner><StorageClass>STANDARD</StorageClass>\
             <Initiated>2009-10-12T17:50:30.000Z</Initiated><ChecksumAlgorithm>SHA256</ChecksumAlgorithm></Upload>\
             <CommonPrefixes><Prefix>photos/</Prefix></CommonPrefixes></ListMultipartUploadsResult>"
        ),
    );
}

fn delete_outcomes() -> Vec<DeleteOutcome> {
    vec![
        DeleteOutcome::Deleted(DeletedObject { key: "sample1.txt".into(), version_id: None, delete_marker: false, delete_marker_version_id: None }),
        DeleteOutcome::Failed(DeleteFailure {
            key: "sample2.txt".into(),
            version_id: None,
            code: ErrorCode::AccessDenied,
            message: "Access Denied".into(),
        }),
        DeleteOutcome::Deleted(DeletedObject {
            key: "a&b".into(),
            version_id: Some("null".into()),
            delete_marker: true,
            delete_marker_version_id: Some("NeQt5xeFTfgPJD8B4CGWnkSLtluMr11s".into()),
        }),
    ]
}

#[test]
fn delete_result_body() {
    check(
        delete_result(&delete_outcomes(), false),
        &format!(
            "<DeleteResult {NS}><Deleted><Key>sample1.txt</Key></Deleted>\
             <Error><Key>sample2.txt</Key><Code>AccessDenied</Code><Message>Access Denied</Message></Error>\
             <Deleted><Key>a&amp;b</Key><VersionId>null</VersionId><DeleteMarker>true</DeleteMarker>\
             <DeleteMarkerVersionId>NeQt5xeFTfgPJD8B4CGWnkSLtluMr11s</DeleteMarkerVersionId></Deleted></DeleteResult>"
        ),
    );
}

#[test]
fn delete_result_quiet_lists_only_errors() {
    check(
        delete_result(&delete_outcomes(), true),
        &format!(
            "<DeleteResult {NS}><Error><Key>sample2.txt</Key><Code>AccessDenied</Code><Message>Access Denied</Message></Error>\
             </DeleteResult>"
        ),
    );
    check(delete_result(&delete_outcomes()[..1], true), &format!("<DeleteResult {NS}></DeleteResult>"));
}

#[test]
#[should_panic(expected = "without quotes")]
fn quoted_etag_is_a_caller_bug() {
    let mut page = page();
    page.contents[0].etag = "\"abc\"".into();
    let result = ListObjectsV2 { page, continuation_token: None, next_continuation_token: None, start_after: None };
    let _ = list_objects_v2(&result);
}

#[test]
fn tagging_body() {
    let tags = vec![("Environment".to_string(), "Test".to_string()), ("a&b".to_string(), String::new())];
    check(
        tagging(&tags),
        &format!(
            "<Tagging {NS}><TagSet><Tag><Key>Environment</Key><Value>Test</Value></Tag><Tag><Key>a&amp;b</Key><Value></Value></Tag></TagSet></Tagging>"
        ),
    );
    check(tagging(&[]), &format!("<Tagging {NS}><TagSet></TagSet></Tagging>"));
}

#[test]
fn cors_configuration_body() {
    let rule = s3front::cors::CorsRule {
        id: Some("r1".into()),
        allowed_origins: vec!["*".into()],
        allowed_methods: vec!["GET".into(), "HEAD".into()],
        allowed_headers: vec!["x-amz-*".into()],
        expose_headers: vec!["ETag".into()],
        max_age_seconds: Some(60),
    };
    check(
        cors_configuration(&[rule]),
        &format!(
            "<CORSConfiguration {NS}><CORSRule><ID>r1</ID><AllowedHeader>x-amz-*</AllowedHeader><AllowedMethod>GET</AllowedMethod>\
             <AllowedMethod>HEAD</AllowedMethod><AllowedOrigin>*</AllowedOrigin><ExposeHeader>ETag</ExposeHeader>\
             <MaxAgeSeconds>60</MaxAgeSeconds></CORSRule></CORSConfiguration>"
        ),
    );
}

#[test]
fn object_attributes_body() {
    let wanted = ObjectAttributes { etag: true, checksum: true, parts: true, storage_class: true, size: true };
    let sizes = [5u64 << 20, 5 << 20, 7];
    let result = ObjectAttributesResult {
        etag: "abc-3".into(),
        checksums: Checksums { crc32: Some("AAAAAA==".into()), ..Checksums::default() },
        checksum_type: None,
        size: (10 << 20) + 7,
        part_sizes: &sizes,
        part_checksums: Vec::new(),
        part_number_marker: 1,
        max_parts: 1,
    };
    check(
        object_attributes(&wanted, &result),
        &format!(
            "<GetObjectAttributesResponse {NS}><ETag>abc-3</ETag><Checksum><ChecksumCRC32>AAAAAA==</ChecksumCRC32></Checksum>\
             <ObjectParts><PartsCount>3</PartsCount><PartNumberMarker>1</PartNumberMarker><NextPartNumberMarker>2</NextPartNumberMarker>\
             <MaxParts>1</MaxParts><IsTruncated>true</IsTruncated><Part><PartNumber>2</PartNumber><Size>5242880</Size></Part></ObjectParts>\
             <StorageClass>STANDARD</StorageClass><ObjectSize>10485767</ObjectSize></GetObjectAttributesResponse>"
        ),
    );
    check(object_attributes(&ObjectAttributes { size: true, ..ObjectAttributes::default() }, &result), &format!("<GetObjectAttributesResponse {NS}><ObjectSize>10485767</ObjectSize></GetObjectAttributesResponse>"));
    check(empty_configuration("BucketLoggingStatus"), &format!("<BucketLoggingStatus {NS}/>"));
}
