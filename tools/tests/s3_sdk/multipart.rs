//! Multipart uploads: create, upload parts, list parts, complete, abort, list uploads, copy parts.

use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};

use crate::harness::*;

/// S3's multipart ETag: MD5 of the concatenated binary part MD5s, then `-<part count>`.
fn multipart_etag(parts: &[&[u8]]) -> String {
    let mut digests = Vec::new();
    for part in parts {
        digests.extend_from_slice(&md5(part));
    }
    format!("\"{}-{}\"", hex(&md5(&digests)), parts.len())
}

async fn create(client: &aws_sdk_s3::Client, bucket: &str, key: &str) -> String {
    let output = client
        .create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .ok_or_panic("CreateMultipartUpload");
    assert_eq!(output.bucket(), Some(bucket));
    assert_eq!(output.key(), Some(key));
    output.upload_id().expect("UploadId").to_string()
}

async fn upload_part(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    upload_id: &str,
    part_number: i32,
    data: &[u8],
) -> String {
    let output = client
        .upload_part()
        .bucket(bucket)
        .key(key)
        .upload_id(upload_id)
        .part_number(part_number)
        .body(body(data))
        .send()
        .await
        .ok_or_panic(&format!("UploadPart {part_number}"));
    let etag = output.e_tag().expect("UploadPart ETag").to_string();
    assert_eq!(etag, etag_of(data), "UploadPart ETag is the part's MD5");
    etag
}

fn completed(parts: &[(i32, &str)]) -> CompletedMultipartUpload {
    let parts: Vec<CompletedPart> =
        parts.iter().map(|(number, etag)| CompletedPart::builder().part_number(*number).e_tag(*etag).build()).collect();
    CompletedMultipartUpload::builder().set_parts(Some(parts)).build()
}

#[tokio::test]
async fn upload_list_complete_and_read_back() {
    let server = Server::start("multipart_complete");
    let client = server.client();
    create_bucket(&client, "cs-mpu").await;
    let output = client
        .create_multipart_upload()
        .bucket("cs-mpu")
        .key("assembled")
        .content_type("application/x-test")
        .metadata("stage", "multipart")
        .send()
        .await
        .ok_or_panic("CreateMultipartUpload");
    let upload_id = output.upload_id().expect("UploadId").to_string();
    let parts = [pattern(5 * MIB, 11), pattern(5 * MIB, 12), pattern(KIB, 13)];
    let mut etags = Vec::new();
    for (index, part) in parts.iter().enumerate() {
        etags.push(upload_part(&client, "cs-mpu", "assembled", &upload_id, index as i32 + 1, part).await);
    }

    let listed = client
        .list_parts()
        .bucket("cs-mpu")
        .key("assembled")
        .upload_id(&upload_id)
        .send()
        .await
        .ok_or_panic("ListParts");
    assert_eq!(listed.upload_id(), Some(upload_id.as_str()));
    let numbers: Vec<i32> = listed.parts().iter().filter_map(|p| p.part_number()).collect();
    assert_eq!(numbers, [1, 2, 3]);
    for (index, part) in listed.parts().iter().enumerate() {
        assert_eq!(part.size(), Some(parts[index].len() as i64), "ListParts size of part {}", index + 1);
        assert_eq!(part.e_tag(), Some(etags[index].as_str()), "ListParts ETag of part {}", index + 1);
        assert!(part.last_modified().is_some());
    }
    assert_eq!(listed.is_truncated(), Some(false));

    // ListParts paginates by part number.
    let page = client
        .list_parts()
        .bucket("cs-mpu")
        .key("assembled")
        .upload_id(&upload_id)
        .max_parts(2)
        .send()
        .await
        .ok_or_panic("ListParts max-parts");
    assert_eq!(page.parts().len(), 2);
    assert_eq!(page.is_truncated(), Some(true));
    assert_eq!(page.next_part_number_marker(), Some("2"));

    let output = client
        .complete_multipart_upload()
        .bucket("cs-mpu")
        .key("assembled")
        .upload_id(&upload_id)
        .multipart_upload(completed(&[(1, &etags[0]), (2, &etags[1]), (3, &etags[2])]))
        .send()
        .await
        .ok_or_panic("CompleteMultipartUpload");
    let expected_etag = multipart_etag(&[&parts[0], &parts[1], &parts[2]]);
    assert_eq!(output.e_tag(), Some(expected_etag.as_str()), "multipart ETag");
    assert_eq!(output.bucket(), Some("cs-mpu"));
    assert_eq!(output.key(), Some("assembled"));

    let whole: Vec<u8> = parts.concat();
    let get = client.get_object().bucket("cs-mpu").key("assembled").send().await.ok_or_panic("GetObject");
    assert_eq!(get.content_length(), Some(whole.len() as i64));
    assert_eq!(get.e_tag(), Some(expected_etag.as_str()));
    assert_eq!(get.content_type(), Some("application/x-test"), "Content-Type from CreateMultipartUpload");
    assert_eq!(get.metadata().and_then(|m| m.get("stage")).map(String::as_str), Some("multipart"));
    assert_same_bytes(&collect(get).await, &whole, "multipart object");

    // A range across the part boundary.
    let range = format!("bytes={}-{}", 5 * MIB - 4, 5 * MIB + 3);
    let get = client.get_object().bucket("cs-mpu").key("assembled").range(&range).send().await.ok_or_panic("range");
    assert_same_bytes(&collect(get).await, &whole[5 * MIB - 4..5 * MIB + 4], "range across parts");

    // The upload is gone once completed.
    let (status, code) =
        expect_error(client.list_parts().bucket("cs-mpu").key("assembled").upload_id(&upload_id).send().await);
    assert_eq!((status, code.as_str()), (404, "NoSuchUpload"));
    // A retried completion (its answer lost) is answered as the first was, while the object
    // it made is the key's current one; after another write, NoSuchUpload.
    let retry = || {
        client
            .complete_multipart_upload()
            .bucket("cs-mpu")
            .key("assembled")
            .upload_id(&upload_id)
            .multipart_upload(completed(&[(1, &etags[0]), (2, &etags[1]), (3, &etags[2])]))
            .send()
    };
    let again = retry().await.ok_or_panic("CompleteMultipartUpload again");
    assert_eq!(again.e_tag(), Some(expected_etag.as_str()), "the retry's ETag");
    put(&client, "cs-mpu", "assembled", b"replaced").await;
    let (status, code) = expect_error(retry().await);
    assert_eq!((status, code.as_str()), (404, "NoSuchUpload"), "a completion of an object since replaced");
    let uploads = client.list_multipart_uploads().bucket("cs-mpu").send().await.ok_or_panic("ListMultipartUploads");
    assert!(uploads.uploads().is_empty(), "{:?}", uploads.uploads());
}

#[tokio::test]
async fn reuploaded_part_replaces_the_first() {
    let server = Server::start("multipart_reupload");
    let client = server.client_checksum_when_required();
    create_bucket(&client, "cs-mpu").await;
    let upload_id = create(&client, "cs-mpu", "k").await;
    let etag0 = upload_part(&client, "cs-mpu", "k", &upload_id, 1, &pattern(5 * MIB, 1)).await;
    let first = pattern(5 * MIB, 2);
    let last = pattern(100, 3);
    let etag1 = upload_part(&client, "cs-mpu", "k", &upload_id, 1, &first).await;
    let etag2 = upload_part(&client, "cs-mpu", "k", &upload_id, 2, &last).await;
    let listed =
        client.list_parts().bucket("cs-mpu").key("k").upload_id(&upload_id).send().await.ok_or_panic("ListParts");
    assert_eq!(listed.parts().len(), 2);
    assert_eq!(listed.parts()[0].e_tag(), Some(etag1.as_str()));
    client
        .complete_multipart_upload()
        .bucket("cs-mpu")
        .key("k")
        .upload_id(&upload_id)
        .multipart_upload(completed(&[(1, &etag0), (1, &etag1), (2, &etag2)]))
        .send()
        .await
        .ok_or_panic("CompleteMultipartUpload");
    // Part 1 named twice, as a client that kept both answers lists it: the last entry counts.
    assert_same_bytes(&get(&client, "cs-mpu", "k").await, &[first, last].concat(), "re-uploaded part");
}

#[tokio::test]
async fn complete_errors() {
    let server = Server::start("multipart_complete_errors");
    let client = server.client();
    create_bucket(&client, "cs-mpu").await;
    let upload_id = create(&client, "cs-mpu", "k").await;
    let big = pattern(5 * MIB, 21);
    let small = pattern(KIB, 22);
    let etag1 = upload_part(&client, "cs-mpu", "k", &upload_id, 1, &small).await;
    let etag2 = upload_part(&client, "cs-mpu", "k", &upload_id, 2, &big).await;
    let etag3 = upload_part(&client, "cs-mpu", "k", &upload_id, 3, &small).await;

    let complete = |parts: CompletedMultipartUpload| {
        client.complete_multipart_upload().bucket("cs-mpu").key("k").upload_id(&upload_id).multipart_upload(parts).send()
    };
    let (status, code) = expect_error(complete(completed(&[(2, &etag2), (1, &etag1)])).await);
    assert_eq!((status, code.as_str()), (400, "InvalidPartOrder"), "parts out of order");
    let (status, code) = expect_error(complete(completed(&[(2, "\"0123456789abcdef0123456789abcdef\"")])).await);
    assert_eq!((status, code.as_str()), (400, "InvalidPart"), "wrong ETag");
    let (status, code) = expect_error(complete(completed(&[(2, &etag2), (7, &etag3)])).await);
    assert_eq!((status, code.as_str()), (400, "InvalidPart"), "a part never uploaded");
    let (status, code) = expect_error(complete(completed(&[(1, &etag1), (2, &etag2)])).await);
    assert_eq!((status, code.as_str()), (400, "EntityTooSmall"), "1 KiB part 1 that is not the last");
    let (status, code) = expect_error(complete(CompletedMultipartUpload::builder().build()).await);
    assert_eq!((status, code.as_str()), (400, "MalformedXML"), "no parts");

    // None of the failures consumed the upload: a valid subset completes (part 1 left out).
    let output = complete(completed(&[(2, &etag2), (3, &etag3)])).await.ok_or_panic("complete parts 2 and 3");
    assert_eq!(output.e_tag(), Some(multipart_etag(&[&big, &small]).as_str()));
    assert_same_bytes(&get(&client, "cs-mpu", "k").await, &[big, small].concat(), "parts 2 and 3");

    let (status, code) = expect_error(
        client
            .upload_part()
            .bucket("cs-mpu")
            .key("k")
            .upload_id("no-such-upload-id")
            .part_number(1)
            .body(body(b"x"))
            .send()
            .await,
    );
    assert_eq!((status, code.as_str()), (404, "NoSuchUpload"), "UploadPart to an unknown upload");
}

#[tokio::test]
async fn abort_and_list_uploads() {
    let server = Server::start("multipart_abort_list");
    let client = server.client();
    create_bucket(&client, "cs-mpu").await;
    let first = create(&client, "cs-mpu", "dir/a").await;
    let second = create(&client, "cs-mpu", "dir/a").await;
    let third = create(&client, "cs-mpu", "other").await;
    assert_ne!(first, second, "two uploads to one key have different ids");
    upload_part(&client, "cs-mpu", "dir/a", &first, 1, &pattern(1000, 1)).await;

    let uploads = client.list_multipart_uploads().bucket("cs-mpu").send().await.ok_or_panic("ListMultipartUploads");
    let mut listed: Vec<(String, String)> = uploads
        .uploads()
        .iter()
        .map(|u| (u.key().expect("Key").to_string(), u.upload_id().expect("UploadId").to_string()))
        .collect();
    let keys: Vec<&str> = listed.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["dir/a", "dir/a", "other"], "uploads sorted by key");
    listed.sort();
    let mut expected =
        vec![("dir/a".to_string(), first.clone()), ("dir/a".to_string(), second.clone()), ("other".to_string(), third)];
    expected.sort();
    assert_eq!(listed, expected);
    for upload in uploads.uploads() {
        assert!(upload.initiated().is_some(), "Initiated of {upload:?}");
    }
    let uploads = client
        .list_multipart_uploads()
        .bucket("cs-mpu")
        .prefix("dir/")
        .send()
        .await
        .ok_or_panic("ListMultipartUploads prefix");
    assert_eq!(uploads.uploads().len(), 2);

    client
        .abort_multipart_upload()
        .bucket("cs-mpu")
        .key("dir/a")
        .upload_id(&first)
        .send()
        .await
        .ok_or_panic("AbortMultipartUpload");
    let (status, code) = expect_error(client.list_parts().bucket("cs-mpu").key("dir/a").upload_id(&first).send().await);
    assert_eq!((status, code.as_str()), (404, "NoSuchUpload"), "ListParts after abort");
    let (status, code) = expect_error(
        client
            .upload_part()
            .bucket("cs-mpu")
            .key("dir/a")
            .upload_id(&first)
            .part_number(2)
            .body(body(b"late"))
            .send()
            .await,
    );
    assert_eq!((status, code.as_str()), (404, "NoSuchUpload"), "UploadPart after abort");
    let (status, code) =
        expect_error(client.abort_multipart_upload().bucket("cs-mpu").key("dir/a").upload_id(&first).send().await);
    assert_eq!((status, code.as_str()), (404, "NoSuchUpload"), "second abort");

    let uploads = client.list_multipart_uploads().bucket("cs-mpu").send().await.ok_or_panic("ListMultipartUploads");
    let ids: Vec<&str> = uploads.uploads().iter().filter_map(|u| u.upload_id()).collect();
    assert!(!ids.contains(&first.as_str()), "aborted upload still listed: {ids:?}");
    assert!(ids.contains(&second.as_str()));
    let (status, _) = expect_error(client.head_object().bucket("cs-mpu").key("dir/a").send().await);
    assert_eq!(status, 404, "no object from an unfinished upload");
}

#[tokio::test]
async fn upload_part_copy_with_ranges() {
    let server = Server::start("multipart_part_copy");
    let client = server.client();
    create_bucket(&client, "cs-mpu").await;
    let source = pattern(12 * MIB, 31);
    put(&client, "cs-mpu", "source", &source).await;
    let upload_id = create(&client, "cs-mpu", "target").await;

    let first_range = 0..5 * MIB;
    let output = client
        .upload_part_copy()
        .bucket("cs-mpu")
        .key("target")
        .upload_id(&upload_id)
        .part_number(1)
        .copy_source("cs-mpu/source")
        .copy_source_range(format!("bytes=0-{}", 5 * MIB - 1))
        .send()
        .await
        .ok_or_panic("UploadPartCopy with a range");
    let etag1 = output.copy_part_result().and_then(|r| r.e_tag()).expect("CopyPartResult ETag").to_string();
    assert_eq!(etag1, etag_of(&source[first_range.clone()]));

    let second_range = 6 * MIB + 3..12 * MIB; // at least 5 MiB: not the last part
    let output = client
        .upload_part_copy()
        .bucket("cs-mpu")
        .key("target")
        .upload_id(&upload_id)
        .part_number(2)
        .copy_source("cs-mpu/source")
        .copy_source_range(format!("bytes={}-{}", second_range.start, second_range.end - 1))
        .send()
        .await
        .ok_or_panic("UploadPartCopy tail range");
    let etag2 = output.copy_part_result().and_then(|r| r.e_tag()).expect("CopyPartResult ETag").to_string();
    assert_eq!(etag2, etag_of(&source[second_range.clone()]));

    let tail = b"and a regular part".to_vec();
    let etag3 = upload_part(&client, "cs-mpu", "target", &upload_id, 3, &tail).await;
    client
        .complete_multipart_upload()
        .bucket("cs-mpu")
        .key("target")
        .upload_id(&upload_id)
        .multipart_upload(completed(&[(1, &etag1), (2, &etag2), (3, &etag3)]))
        .send()
        .await
        .ok_or_panic("CompleteMultipartUpload");
    let expected = [&source[first_range], &source[second_range], &tail[..]].concat();
    assert_same_bytes(&get(&client, "cs-mpu", "target").await, &expected, "assembled from copied parts");

    let upload_id = create(&client, "cs-mpu", "target2").await;
    let (status, code) = expect_error(
        client
            .upload_part_copy()
            .bucket("cs-mpu")
            .key("target2")
            .upload_id(&upload_id)
            .part_number(1)
            .copy_source("cs-mpu/source")
            .copy_source_range(format!("bytes=0-{}", 12 * MIB))
            .send()
            .await,
    );
    assert_eq!((status, code.as_str()), (416, "InvalidRange"), "copy range past the source's end");
    let (status, code) = expect_error(
        client
            .upload_part_copy()
            .bucket("cs-mpu")
            .key("target2")
            .upload_id(&upload_id)
            .part_number(1)
            .copy_source("cs-mpu/source")
            .copy_source_range("bytes=5-1")
            .send()
            .await,
    );
    assert_eq!((status, code.as_str()), (400, "InvalidArgument"), "a malformed copy range");
}

#[tokio::test]
async fn object_attributes_of_single_and_multipart_objects() {
    use aws_sdk_s3::types::ObjectAttributes;
    let server = Server::start("object_attributes");
    let client = server.client();
    create_bucket(&client, "cs-attr").await;
    let single = pattern(1000, 1);
    put(&client, "cs-attr", "single", &single).await;
    let id = create(&client, "cs-attr", "multi").await;
    let (p1, p2, p3) = (pattern(5 * MIB, 2), pattern(5 * MIB, 3), pattern(1234, 4));
    let e1 = upload_part(&client, "cs-attr", "multi", &id, 1, &p1).await;
    let e2 = upload_part(&client, "cs-attr", "multi", &id, 2, &p2).await;
    let e3 = upload_part(&client, "cs-attr", "multi", &id, 3, &p3).await;
    client
        .complete_multipart_upload()
        .bucket("cs-attr")
        .key("multi")
        .upload_id(&id)
        .multipart_upload(completed(&[(1, &e1), (2, &e2), (3, &e3)]))
        .send()
        .await
        .ok_or_panic("complete");

    let all = [ObjectAttributes::Etag, ObjectAttributes::ObjectParts, ObjectAttributes::StorageClass, ObjectAttributes::ObjectSize];
    let got = client
        .get_object_attributes()
        .bucket("cs-attr")
        .key("single")
        .set_object_attributes(Some(all.to_vec()))
        .send()
        .await
        .ok_or_panic("GetObjectAttributes single");
    assert_eq!(got.e_tag(), Some(hex(&md5(&single)).as_str()), "the ETag, unquoted");
    assert_eq!(got.object_size(), Some(1000), "{got:?}");
    assert_eq!(got.storage_class().map(|c| c.as_str()), Some("STANDARD"));
    assert!(got.object_parts().is_none(), "a single PUT has no parts");
    assert!(got.last_modified().is_some());

    let got = client
        .get_object_attributes()
        .bucket("cs-attr")
        .key("multi")
        .set_object_attributes(Some(all.to_vec()))
        .max_parts(2)
        .send()
        .await
        .ok_or_panic("GetObjectAttributes multipart");
    assert_eq!(got.e_tag().map(|e| format!("\"{e}\"")), Some(multipart_etag(&[&p1, &p2, &p3])));
    assert_eq!(got.object_size(), Some((p1.len() + p2.len() + p3.len()) as i64));
    let parts = got.object_parts().expect("ObjectParts");
    assert_eq!(parts.total_parts_count(), Some(3));
    assert_eq!(parts.is_truncated(), Some(true));
    let sizes: Vec<(Option<i32>, Option<i64>)> = parts.parts().iter().map(|p| (p.part_number(), p.size())).collect();
    assert_eq!(sizes, vec![(Some(1), Some(p1.len() as i64)), (Some(2), Some(p2.len() as i64))]);
    let (status, code) =
        expect_error(client.get_object_attributes().bucket("cs-attr").key("missing").object_attributes(ObjectAttributes::Etag).send().await);
    assert_eq!((status, code.as_str()), (404, "NoSuchKey"));
}

/// GET and HEAD with `partNumber`, as download managers fetch a multipart object part by part:
/// the part's bytes with 206 and its Content-Range, the whole object's ETag and part count; a
/// part past the last is InvalidPart; partNumber with a Range is refused; part 1 of an object
/// that was not uploaded in parts is all of it.
#[tokio::test]
async fn get_and_head_by_part_number() {
    let server = Server::start("multipart_part_number");
    let client = server.client_checksum_when_required();
    create_bucket(&client, "cs-mpn").await;
    let parts = [pattern(5 * MIB, 11), pattern(5 * MIB, 12), pattern(1000, 13)];
    let upload_id = create(&client, "cs-mpn", "k").await;
    let mut etags = Vec::new();
    for (i, data) in parts.iter().enumerate() {
        etags.push(upload_part(&client, "cs-mpn", "k", &upload_id, i as i32 + 1, data).await);
    }
    let done: Vec<(i32, &str)> = etags.iter().enumerate().map(|(i, e)| (i as i32 + 1, e.as_str())).collect();
    let completed = client.complete_multipart_upload().bucket("cs-mpn").key("k").upload_id(&upload_id).multipart_upload(completed(&done));
    let object_etag = completed.send().await.ok_or_panic("CompleteMultipartUpload").e_tag().expect("ETag").to_string();
    let total: usize = parts.iter().map(Vec::len).sum();
    let mut start = 0;
    for (i, data) in parts.iter().enumerate() {
        let n = i as i32 + 1;
        let got = client.get_object().bucket("cs-mpn").key("k").part_number(n).send().await.ok_or_panic("GetObject partNumber");
        assert_eq!(got.parts_count(), Some(3), "part {n}");
        assert_eq!(got.e_tag(), Some(object_etag.as_str()), "part {n}: the object's ETag");
        assert_eq!(got.content_range(), Some(format!("bytes {start}-{}/{total}", start + data.len() - 1).as_str()), "part {n}");
        assert_same_bytes(&collect(got).await, data, &format!("part {n}"));
        let head = client.head_object().bucket("cs-mpn").key("k").part_number(n).send().await.ok_or_panic("HeadObject partNumber");
        assert_eq!((head.content_length(), head.parts_count()), (Some(data.len() as i64), Some(3)), "HEAD part {n}");
        start += data.len();
    }
    let past = client.get_object().bucket("cs-mpn").key("k").part_number(4).send().await;
    assert_eq!(expect_error(past), (400, "InvalidPart".to_string()));
    let both = client.get_object().bucket("cs-mpn").key("k").part_number(1).range("bytes=0-9").send().await;
    assert_eq!(expect_error(both), (400, "InvalidRequest".to_string()));
    put(&client, "cs-mpn", "single", b"body").await;
    let whole = client.get_object().bucket("cs-mpn").key("single").part_number(1).send().await.ok_or_panic("GetObject partNumber 1");
    assert_eq!(whole.parts_count(), None);
    assert_eq!(collect(whole).await, b"body");
    let past = client.get_object().bucket("cs-mpn").key("single").part_number(2).send().await;
    assert_eq!(expect_error(past), (400, "InvalidPart".to_string()));
}

use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumMode, ChecksumType};

use crate::checksums::checksum_of;

/// The base64 checksum of `algorithm` over `data`, computed by the SDK's own crate.
fn sdk_checksum(algorithm: &ChecksumAlgorithm, data: &[u8]) -> String {
    use std::str::FromStr;
    let name = algorithm.as_str().to_ascii_lowercase();
    let mut checksum = aws_smithy_checksums::ChecksumAlgorithm::from_str(&name).expect("known algorithm").into_impl();
    checksum.update(data);
    checksum.header_value().to_str().expect("ASCII header value").to_string()
}

/// The object checksum S3 gives `parts`: composite, `base64(H(raw digests))-N`; full-object,
/// the checksum of all the bytes.
fn object_checksum(algorithm: &ChecksumAlgorithm, kind: &ChecksumType, parts: &[&[u8]]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    match kind {
        ChecksumType::Composite => {
            let raw: Vec<u8> = parts.iter().flat_map(|p| b64.decode(sdk_checksum(algorithm, p)).expect("base64")).collect();
            format!("{}-{}", sdk_checksum(algorithm, &raw), parts.len())
        }
        _ => sdk_checksum(algorithm, &parts.concat()),
    }
}

/// An upload created with a checksum algorithm (and type): each part gets a checksum of it,
/// sent by the client (part 1, an aws-chunked trailer) or computed by the server (part 2, sent
/// with none); ListParts shows them; Complete checks the ones it names and builds the object's
/// checksum, composite or full-object, which HEAD, GET (whole or by part) and
/// GetObjectAttributes return in checksum mode.
#[tokio::test]
async fn checksums_of_uploads() {
    use aws_sdk_s3::types::ObjectAttributes;
    let server = Server::start("multipart_checksums");
    let client = server.client();
    let bare = server.client_checksum_when_required();
    create_bucket(&client, "cs-mpc").await;
    let cases = [
        (ChecksumAlgorithm::Crc32, None, ChecksumType::Composite),
        (ChecksumAlgorithm::Sha256, Some(ChecksumType::Composite), ChecksumType::Composite),
        (ChecksumAlgorithm::Crc64Nvme, None, ChecksumType::FullObject),
        (ChecksumAlgorithm::Crc32C, Some(ChecksumType::FullObject), ChecksumType::FullObject),
    ];
    let parts = [pattern(5 * MIB, 31), pattern(1000, 32)];
    for (algorithm, asked_type, kind) in cases {
        let key = format!("k-{}", algorithm.as_str());
        let what = format!("{} {}", algorithm.as_str(), kind.as_str());
        let created = client
            .create_multipart_upload()
            .bucket("cs-mpc")
            .key(&key)
            .checksum_algorithm(algorithm.clone())
            .set_checksum_type(asked_type)
            .send()
            .await
            .ok_or_panic("CreateMultipartUpload with a checksum");
        assert_eq!(created.checksum_algorithm(), Some(&algorithm), "{what}");
        assert_eq!(created.checksum_type(), Some(&kind), "{what}: the type, asked or the default");
        let id = created.upload_id().expect("UploadId").to_string();
        let part = |c: &aws_sdk_s3::Client, n: i32, data: &[u8]| {
            c.upload_part().bucket("cs-mpc").key(&key).upload_id(&id).part_number(n).body(body(data))
        };
        let one = part(&client, 1, &parts[0]).checksum_algorithm(algorithm.clone()).send().await.ok_or_panic("UploadPart 1");
        let two = part(&bare, 2, &parts[1]).send().await.ok_or_panic("UploadPart 2 without a checksum");
        let sums: Vec<String> = parts.iter().map(|p| sdk_checksum(&algorithm, p)).collect();
        assert_eq!(checksum_of!(one, &algorithm), Some(sums[0].as_str()), "{what}: part 1's, sent");
        assert_eq!(checksum_of!(two, &algorithm), Some(sums[1].as_str()), "{what}: part 2's, computed by the server");

        let listed = client.list_parts().bucket("cs-mpc").key(&key).upload_id(&id).send().await.ok_or_panic("ListParts");
        assert_eq!((listed.checksum_algorithm(), listed.checksum_type()), (Some(&algorithm), Some(&kind)), "{what}");
        let listed: Vec<Option<&str>> = listed.parts().iter().map(|p| checksum_of!(p, &algorithm)).collect();
        assert_eq!(listed, vec![Some(sums[0].as_str()), Some(sums[1].as_str())], "{what}: ListParts");

        let completed_part = |n: i32, etag: Option<&str>, sum: &str| {
            let b = CompletedPart::builder().part_number(n).set_e_tag(etag.map(str::to_string));
            match algorithm {
                ChecksumAlgorithm::Crc32 => b.checksum_crc32(sum),
                ChecksumAlgorithm::Crc32C => b.checksum_crc32_c(sum),
                ChecksumAlgorithm::Sha256 => b.checksum_sha256(sum),
                ChecksumAlgorithm::Crc64Nvme => b.checksum_crc64_nvme(sum),
                _ => b.checksum_sha1(sum),
            }
            .build()
        };
        let upload = CompletedMultipartUpload::builder()
            .parts(completed_part(1, one.e_tag(), &sums[0]))
            .parts(completed_part(2, two.e_tag(), &sums[1]))
            .build();
        let expected = object_checksum(&algorithm, &kind, &[&parts[0], &parts[1]]);
        let complete = client.complete_multipart_upload().bucket("cs-mpc").key(&key).upload_id(&id).multipart_upload(upload);
        let complete = match algorithm {
            ChecksumAlgorithm::Crc32 => complete.checksum_crc32(&expected),
            ChecksumAlgorithm::Crc32C => complete.checksum_crc32_c(&expected),
            ChecksumAlgorithm::Sha256 => complete.checksum_sha256(&expected),
            _ => complete.checksum_crc64_nvme(&expected),
        };
        let done = complete.send().await.ok_or_panic("CompleteMultipartUpload with the object's checksum");
        assert_eq!(checksum_of!(done, &algorithm), Some(expected.as_str()), "{what}: Complete");
        assert_eq!(done.checksum_type(), Some(&kind), "{what}: Complete");

        let head = client.head_object().bucket("cs-mpc").key(&key).checksum_mode(ChecksumMode::Enabled).send().await.ok_or_panic("HEAD");
        assert_eq!(checksum_of!(head, &algorithm), Some(expected.as_str()), "{what}: HEAD");
        assert_eq!(head.checksum_type(), Some(&kind), "{what}: HEAD");
        let plain = client.head_object().bucket("cs-mpc").key(&key).send().await.ok_or_panic("HEAD without checksum mode");
        assert_eq!(checksum_of!(plain, &algorithm), None, "{what}: only in checksum mode");
        // The SDK checks a full-object checksum against the body it reads.
        let got = client.get_object().bucket("cs-mpc").key(&key).checksum_mode(ChecksumMode::Enabled).send().await.ok_or_panic("GET");
        assert_eq!(checksum_of!(got, &algorithm), Some(expected.as_str()), "{what}: GET");
        assert_same_bytes(&collect(got).await, &parts.concat(), &what);
        let first = client.get_object().bucket("cs-mpc").key(&key).part_number(1).checksum_mode(ChecksumMode::Enabled).send().await;
        let first = first.ok_or_panic("GET partNumber 1");
        assert_eq!(checksum_of!(first, &algorithm), Some(sums[0].as_str()), "{what}: a part's GET carries the part's");
        assert_same_bytes(&collect(first).await, &parts[0], &what);
        let range = client.get_object().bucket("cs-mpc").key(&key).range("bytes=0-99").checksum_mode(ChecksumMode::Enabled).send().await;
        let range = range.ok_or_panic("GET range");
        assert_eq!(checksum_of!(range, &algorithm), None, "{what}: no checksum covers a range");

        let attributes = client
            .get_object_attributes()
            .bucket("cs-mpc")
            .key(&key)
            .object_attributes(ObjectAttributes::Checksum)
            .object_attributes(ObjectAttributes::ObjectParts)
            .send()
            .await
            .ok_or_panic("GetObjectAttributes");
        let checksum = attributes.checksum().expect("Checksum");
        assert_eq!((checksum_of!(checksum, &algorithm), checksum.checksum_type()), (Some(expected.as_str()), Some(&kind)), "{what}");
        let object_parts: Vec<Option<&str>> = attributes.object_parts().expect("ObjectParts").parts().iter().map(|p| checksum_of!(p, &algorithm)).collect();
        assert_eq!(object_parts, vec![Some(sums[0].as_str()), Some(sums[1].as_str())], "{what}: ObjectParts");
    }
}

/// Complete refuses a part checksum that is not the part's (InvalidPart) and a whole-object
/// checksum that is not the object's (BadDigest), and neither consumes the upload; a part named
/// without its checksum is taken with the one stored (as Ceph RGW takes it; AWS refuses it for a
/// composite upload). Create refuses a type the algorithm cannot have.
#[tokio::test]
async fn checksum_errors_of_uploads() {
    let server = Server::start("multipart_checksum_errors");
    let client = server.client();
    create_bucket(&client, "cs-mpe").await;
    let refused = client
        .create_multipart_upload()
        .bucket("cs-mpe")
        .key("k")
        .checksum_algorithm(ChecksumAlgorithm::Sha1)
        .checksum_type(ChecksumType::FullObject)
        .send()
        .await;
    assert_eq!(expect_error(refused), (400, "InvalidRequest".to_string()), "SHA1 is composite only");

    let created = client.create_multipart_upload().bucket("cs-mpe").key("k").checksum_algorithm(ChecksumAlgorithm::Crc32).send().await;
    let id = created.ok_or_panic("CreateMultipartUpload").upload_id().expect("UploadId").to_string();
    let data = pattern(3000, 41);
    let part = client.upload_part().bucket("cs-mpe").key("k").upload_id(&id).part_number(1).body(body(&data));
    let part = part.checksum_algorithm(ChecksumAlgorithm::Crc32).send().await.ok_or_panic("UploadPart");
    let (etag, sum) = (part.e_tag().expect("ETag").to_string(), part.checksum_crc32().expect("part checksum").to_string());
    let with = |sum: Option<&str>| {
        let part = CompletedPart::builder().part_number(1).e_tag(&etag).set_checksum_crc32(sum.map(str::to_string)).build();
        client.complete_multipart_upload().bucket("cs-mpe").key("k").upload_id(&id).multipart_upload(CompletedMultipartUpload::builder().parts(part).build())
    };
    assert_eq!(expect_error(with(Some("AAAAAA==")).send().await), (400, "InvalidPart".to_string()), "a wrong part checksum");
    let wrong = with(Some(&sum)).checksum_crc32("AAAAAA==-1").send().await;
    assert_eq!(expect_error(wrong), (400, "BadDigest".to_string()), "a wrong whole-object checksum");
    let wrong = with(None).checksum_crc32("AAAAAA==-1").send().await;
    assert_eq!(expect_error(wrong), (400, "BadDigest".to_string()), "a part without its checksum still counts");
    let expected = object_checksum(&ChecksumAlgorithm::Crc32, &ChecksumType::Composite, &[&data]);
    let done = with(None).checksum_crc32(&expected).send().await.ok_or_panic("Complete after the failures, the part without its checksum");
    assert_eq!(done.checksum_crc32(), Some(expected.as_str()));
    assert_same_bytes(&get(&client, "cs-mpe", "k").await, &data, "the completed object");
}
