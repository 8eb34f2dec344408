//! Every acknowledged write survives SIGKILL and a restart on the same data directory.

use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};

use crate::harness::*;

#[tokio::test]
async fn objects_survive_sigkill_and_restart() {
    let server = Server::start("persistence");
    let client = server.client();
    create_bucket(&client, "cs-keep").await;
    create_bucket(&client, "cs-keep-empty").await;

    let mut expected: Vec<(String, Vec<u8>)> = Vec::new();
    for (index, size) in [0, 1, 4 * KIB, MIB + 1, 20 * MIB].into_iter().enumerate() {
        let key = format!("object-{size}");
        let data = pattern(size, 50 + index as u64);
        put(&client, "cs-keep", &key, &data).await;
        expected.push((key, data));
    }
    // Replaced and deleted keys: the restart must show the last state, not an older one.
    put(&client, "cs-keep", "replaced", &pattern(3 * MIB, 60)).await;
    let replacement = pattern(1000, 61);
    put(&client, "cs-keep", "replaced", &replacement).await;
    expected.push(("replaced".to_string(), replacement));
    put(&client, "cs-keep", "deleted", &pattern(2 * MIB, 62)).await;
    client.delete_object().bucket("cs-keep").key("deleted").send().await.ok_or_panic("DeleteObject");
    client
        .put_object()
        .bucket("cs-keep")
        .key("with-metadata")
        .body(body(b"m"))
        .content_type("text/x-kept")
        .metadata("kept", "yes")
        .send()
        .await
        .ok_or_panic("PutObject with metadata");

    // A completed multipart object.
    let parts = [pattern(5 * MIB, 63), pattern(777, 64)];
    let upload = client
        .create_multipart_upload()
        .bucket("cs-keep")
        .key("multipart")
        .send()
        .await
        .ok_or_panic("CreateMultipartUpload");
    let upload_id = upload.upload_id().expect("UploadId");
    let mut completed = Vec::new();
    for (index, part) in parts.iter().enumerate() {
        let output = client
            .upload_part()
            .bucket("cs-keep")
            .key("multipart")
            .upload_id(upload_id)
            .part_number(index as i32 + 1)
            .body(body(part))
            .send()
            .await
            .ok_or_panic("UploadPart");
        completed.push(
            CompletedPart::builder().part_number(index as i32 + 1).e_tag(output.e_tag().expect("ETag")).build(),
        );
    }
    let output = client
        .complete_multipart_upload()
        .bucket("cs-keep")
        .key("multipart")
        .upload_id(upload_id)
        .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(completed)).build())
        .send()
        .await
        .ok_or_panic("CompleteMultipartUpload");
    let multipart_etag = output.e_tag().expect("ETag").to_string();
    expected.push(("multipart".to_string(), parts.concat()));
    // An upload in progress survives too.
    let pending = client
        .create_multipart_upload()
        .bucket("cs-keep")
        .key("pending")
        .send()
        .await
        .ok_or_panic("CreateMultipartUpload pending");
    let pending_id = pending.upload_id().expect("UploadId").to_string();
    let pending_part = pattern(5 * MIB, 65);
    client
        .upload_part()
        .bucket("cs-keep")
        .key("pending")
        .upload_id(&pending_id)
        .part_number(1)
        .body(body(&pending_part))
        .send()
        .await
        .ok_or_panic("UploadPart pending");

    let data_dir = server.kill();
    let server = Server::start_on(data_dir);
    let client = server.client();

    let listing = client.list_buckets().send().await.ok_or_panic("ListBuckets after restart");
    let names: Vec<&str> = listing.buckets().iter().filter_map(|b| b.name()).collect();
    assert_eq!(names, ["cs-keep", "cs-keep-empty"]);
    // A listing first, with nothing read yet: each ETag and size from the object's record.
    let listing = client.list_objects_v2().bucket("cs-keep").send().await.ok_or_panic("ListObjectsV2 after restart");
    for (key, data) in &expected {
        let o = listing.contents().iter().find(|o| o.key() == Some(key)).unwrap_or_else(|| panic!("{key} listed after restart"));
        let etag = if key == "multipart" { multipart_etag.clone() } else { etag_of(data) };
        assert_eq!((o.e_tag(), o.size()), (Some(etag.as_str()), Some(data.len() as i64)), "{key} listed after restart");
    }
    for (key, data) in &expected {
        let output = client.get_object().bucket("cs-keep").key(key).send().await.ok_or_panic(&format!("GetObject {key}"));
        if key == "multipart" {
            assert_eq!(output.e_tag(), Some(multipart_etag.as_str()), "multipart ETag after restart");
        } else {
            assert_eq!(output.e_tag(), Some(etag_of(data).as_str()), "ETag of {key} after restart");
        }
        assert_same_bytes(&collect(output).await, data, &format!("{key} after restart"));
    }
    let (status, code) = expect_error(client.get_object().bucket("cs-keep").key("deleted").send().await);
    assert_eq!((status, code.as_str()), (404, "NoSuchKey"), "a deleted key stays deleted");
    let head = client.head_object().bucket("cs-keep").key("with-metadata").send().await.ok_or_panic("HeadObject");
    assert_eq!(head.content_type(), Some("text/x-kept"));
    assert_eq!(head.metadata().and_then(|m| m.get("kept")).map(String::as_str), Some("yes"));

    let listing = client.list_objects_v2().bucket("cs-keep").send().await.ok_or_panic("ListObjectsV2");
    let mut keys: Vec<String> = expected.iter().map(|(k, _)| k.clone()).collect();
    keys.push("with-metadata".to_string());
    keys.sort();
    let listed: Vec<String> = listing.contents().iter().filter_map(|o| o.key().map(str::to_string)).collect();
    assert_eq!(listed, keys);

    // Finish the upload begun before the crash.
    let listed = client
        .list_parts()
        .bucket("cs-keep")
        .key("pending")
        .upload_id(&pending_id)
        .send()
        .await
        .ok_or_panic("ListParts after restart");
    assert_eq!(listed.parts().len(), 1);
    let etag = listed.parts()[0].e_tag().expect("ETag").to_string();
    client
        .complete_multipart_upload()
        .bucket("cs-keep")
        .key("pending")
        .upload_id(&pending_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(CompletedPart::builder().part_number(1).e_tag(etag).build())
                .build(),
        )
        .send()
        .await
        .ok_or_panic("complete after restart");
    assert_same_bytes(&get(&client, "cs-keep", "pending").await, &pending_part, "upload finished after restart");
}
