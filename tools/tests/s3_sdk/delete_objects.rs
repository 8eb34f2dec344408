//! DeleteObjects: mixed existing and missing keys, quiet mode, the 1000-key maximum.

use aws_sdk_s3::types::{Delete, ObjectIdentifier};

use crate::harness::*;
use crate::listing::put_many;

fn delete_of(keys: &[String], quiet: bool) -> Delete {
    let objects: Vec<ObjectIdentifier> =
        keys.iter().map(|k| ObjectIdentifier::builder().key(k).build().expect("ObjectIdentifier")).collect();
    Delete::builder().set_objects(Some(objects)).quiet(quiet).build().expect("Delete")
}

fn strings(keys: &[&str]) -> Vec<String> {
    keys.iter().map(|k| k.to_string()).collect()
}

#[tokio::test]
async fn delete_existing_and_missing_keys() {
    let server = Server::start("delete_objects_mixed");
    let client = server.client();
    create_bucket(&client, "cs-multi").await;
    put_many(&client, "cs-multi", &strings(&["one", "two", "three", "keep"])).await;
    let output = client
        .delete_objects()
        .bucket("cs-multi")
        .delete(delete_of(&strings(&["one", "two", "three", "never-existed"]), false))
        .send()
        .await
        .ok_or_panic("DeleteObjects");
    let mut deleted: Vec<&str> = output.deleted().iter().filter_map(|d| d.key()).collect();
    deleted.sort();
    assert_eq!(deleted, ["never-existed", "one", "three", "two"], "a missing key is reported deleted too");
    assert!(output.errors().is_empty(), "{:?}", output.errors());
    let listing = client.list_objects_v2().bucket("cs-multi").send().await.ok_or_panic("ListObjectsV2");
    let left: Vec<&str> = listing.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(left, ["keep"]);
}

#[tokio::test]
async fn delete_quiet_reports_nothing() {
    let server = Server::start("delete_objects_quiet");
    let client = server.client_checksum_when_required();
    create_bucket(&client, "cs-multi").await;
    put_many(&client, "cs-multi", &strings(&["a", "b"])).await;
    let output = client
        .delete_objects()
        .bucket("cs-multi")
        .delete(delete_of(&strings(&["a", "b", "c"]), true))
        .send()
        .await
        .ok_or_panic("DeleteObjects quiet");
    assert!(output.deleted().is_empty(), "quiet mode lists no successes: {:?}", output.deleted());
    assert!(output.errors().is_empty());
    let listing = client.list_objects_v2().bucket("cs-multi").send().await.ok_or_panic("ListObjectsV2");
    assert!(listing.contents().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_1000_keys_at_once() {
    let server = Server::start("delete_objects_1000");
    let client = server.client();
    create_bucket(&client, "cs-multi").await;
    let keys: Vec<String> = (0..1000).map(|i| format!("k/{i:04}")).collect();
    put_many(&client, "cs-multi", &keys).await;
    put(&client, "cs-multi", "survivor", b"s").await;
    let output = client
        .delete_objects()
        .bucket("cs-multi")
        .delete(delete_of(&keys, false))
        .send()
        .await
        .ok_or_panic("DeleteObjects of 1000 keys");
    assert_eq!(output.deleted().len(), 1000);
    assert!(output.errors().is_empty());
    let listing = client.list_objects_v2().bucket("cs-multi").send().await.ok_or_panic("ListObjectsV2");
    let left: Vec<&str> = listing.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(left, ["survivor"]);

    // 1001 keys is over the limit: MalformedXML, as on AWS.
    let too_many: Vec<String> = (0..1001).map(|i| format!("x/{i}")).collect();
    let (status, code) =
        expect_error(client.delete_objects().bucket("cs-multi").delete(delete_of(&too_many, false)).send().await);
    assert_eq!((status, code.as_str()), (400, "MalformedXML"));
}
