//! Bucket CORS: Put/Get/DeleteBucketCors with the SDK, preflights (`OPTIONS`) and the headers
//! of actual cross-origin requests, sent raw as a browser sends them.

use aws_sdk_s3::types::{CorsConfiguration, CorsRule};

use crate::harness::*;

fn rules() -> CorsConfiguration {
    let app = CorsRule::builder()
        .id("app")
        .allowed_origins("https://app.example.com")
        .allowed_methods("GET")
        .allowed_methods("PUT")
        .allowed_headers("x-amz-*")
        .allowed_headers("content-type")
        .expose_headers("ETag")
        .max_age_seconds(600)
        .build()
        .expect("rule");
    let any = CorsRule::builder().allowed_origins("*").allowed_methods("GET").allowed_methods("HEAD").build().expect("rule");
    CorsConfiguration::builder().cors_rules(app).cors_rules(any).build().expect("configuration")
}

fn header<'a>(r: &'a RawResponse, name: &str) -> Option<&'a str> {
    r.header(name)
}

#[tokio::test]
async fn cors_rules_answer_preflights_and_cross_origin_requests() {
    let server = Server::start("cors_rules");
    let client = server.client();
    create_bucket(&client, "web").await;
    put(&client, "web", "page.html", b"<p>hi</p>").await;
    let port = server.port;
    let options = |origin: &str, method: &str, headers: &str| {
        let mut h = vec![("origin", origin), ("access-control-request-method", method)];
        if !headers.is_empty() {
            h.push(("access-control-request-headers", headers));
        }
        raw_request(port, "OPTIONS", "/web/page.html", &h, b"")
    };

    let (status, code) = expect_error(client.get_bucket_cors().bucket("web").send().await);
    assert_eq!((status, code.as_str()), (404, "NoSuchCORSConfiguration"));
    let refused = options("https://app.example.com", "GET", "");
    assert_eq!(refused.status, 403, "no CORS configuration yet: {}", refused.body_text());

    client.put_bucket_cors().bucket("web").cors_configuration(rules()).send().await.ok_or_panic("PutBucketCors");
    let got = client.get_bucket_cors().bucket("web").send().await.ok_or_panic("GetBucketCors");
    assert_eq!(got.cors_rules().len(), 2);
    assert_eq!(got.cors_rules()[0].id(), Some("app"));
    assert_eq!(got.cors_rules()[0].allowed_headers(), ["x-amz-*", "content-type"]);
    assert_eq!(got.cors_rules()[0].max_age_seconds(), Some(600));

    // A preflight the first rule allows: the origin echoed, the headers it asked for.
    let ok = options("https://app.example.com", "PUT", "X-Amz-Date, Content-Type");
    assert_eq!(ok.status, 200, "{}", ok.body_text());
    assert_eq!(header(&ok, "access-control-allow-origin"), Some("https://app.example.com"));
    assert_eq!(header(&ok, "access-control-allow-methods"), Some("GET, PUT"));
    assert_eq!(header(&ok, "access-control-allow-headers"), Some("x-amz-date, content-type"));
    assert_eq!(header(&ok, "access-control-max-age"), Some("600"));
    assert_eq!(header(&ok, "access-control-expose-headers"), Some("ETag"));
    // Any origin may GET, not PUT, and not with a header no rule allows.
    let any = options("https://elsewhere.example", "GET", "");
    assert_eq!((any.status, header(&any, "access-control-allow-origin")), (200, Some("*")));
    assert_eq!(options("https://elsewhere.example", "PUT", "").status, 403);
    assert_eq!(options("https://app.example.com", "PUT", "authorization-extra").status, 403);
    let no_origin = raw_request(port, "OPTIONS", "/web/page.html", &[("access-control-request-method", "GET")], b"");
    assert_eq!(no_origin.status, 400);
    // A preflight of a presigned URL (the browser sends OPTIONS to the same URL, query and
    // all) is not checked against the signature, which was made for the GET.
    let presigned = client
        .get_object()
        .bucket("web")
        .key("page.html")
        .presigned(aws_sdk_s3::presigning::PresigningConfig::expires_in(std::time::Duration::from_secs(60)).expect("config"))
        .await
        .expect("presign");
    let url = presigned.uri().to_string();
    let target = &url[url.find("/web/").expect("path-style URL")..];
    let preflight = raw_request(port, "OPTIONS", target, &[("origin", "https://app.example.com"), ("access-control-request-method", "GET")], b"");
    assert_eq!((preflight.status, header(&preflight, "access-control-allow-origin")), (200, Some("https://app.example.com")));

    // An actual cross-origin GET (anonymous, of a public-read object in a public-read bucket)
    // carries the headers too, streamed object responses included.
    client.put_bucket_acl().bucket("web").acl(aws_sdk_s3::types::BucketCannedAcl::PublicRead).send().await.ok_or_panic("ACL");
    client
        .put_object_acl()
        .bucket("web")
        .key("page.html")
        .acl(aws_sdk_s3::types::ObjectCannedAcl::PublicRead)
        .send()
        .await
        .ok_or_panic("object ACL");
    let get = raw_request(port, "GET", "/web/page.html", &[("origin", "https://app.example.com")], b"");
    assert_eq!(get.status, 200, "{}", get.body_text());
    assert_eq!(get.body, b"<p>hi</p>");
    assert_eq!(header(&get, "access-control-allow-origin"), Some("https://app.example.com"));
    assert_eq!(header(&get, "access-control-expose-headers"), Some("ETag"));
    let list = raw_request(port, "GET", "/web", &[("origin", "https://other.example")], b"");
    assert_eq!((list.status, header(&list, "access-control-allow-origin")), (200, Some("*")));
    // An error answer carries them too, so that the page can read why it failed.
    let missing = raw_request(port, "GET", "/web/missing.html", &[("origin", "https://app.example.com")], b"");
    assert_eq!(missing.status, 404, "{}", missing.body_text());
    assert_eq!(header(&missing, "access-control-allow-origin"), Some("https://app.example.com"));
    let plain = raw_request(port, "GET", "/web/page.html", &[], b"");
    assert_eq!(header(&plain, "access-control-allow-origin"), None, "no Origin, no CORS headers");

    // The rules survive a restart; deleting them ends CORS.
    let dir = server.stop();
    let server = Server::start_on(dir);
    let client = server.client();
    let again = raw_request(server.port, "OPTIONS", "/web/page.html", &[("origin", "https://app.example.com"), ("access-control-request-method", "GET")], b"");
    assert_eq!(again.status, 200, "after a restart: {}", again.body_text());
    client.delete_bucket_cors().bucket("web").send().await.ok_or_panic("DeleteBucketCors");
    let gone = raw_request(server.port, "OPTIONS", "/web/page.html", &[("origin", "https://app.example.com"), ("access-control-request-method", "GET")], b"");
    assert_eq!(gone.status, 403);
}

#[tokio::test]
async fn bad_cors_configurations_are_refused() {
    let server = Server::start("cors_refused");
    let client = server.client();
    create_bucket(&client, "web").await;
    let patch = CorsRule::builder().allowed_origins("*").allowed_methods("PATCH").build().expect("rule");
    let (status, code) = expect_error(
        client.put_bucket_cors().bucket("web").cors_configuration(CorsConfiguration::builder().cors_rules(patch).build().expect("cfg")).send().await,
    );
    assert_eq!((status, code.as_str()), (400, "InvalidRequest"), "an unsupported method");
    let two_stars = CorsRule::builder().allowed_origins("*.a.*").allowed_methods("GET").build().expect("rule");
    let (status, code) = expect_error(
        client.put_bucket_cors().bucket("web").cors_configuration(CorsConfiguration::builder().cors_rules(two_stars).build().expect("cfg")).send().await,
    );
    assert_eq!((status, code.as_str()), (400, "InvalidRequest"), "two wildcards in an origin");
    let (status, _) = expect_error(client.get_bucket_cors().bucket("web").send().await);
    assert_eq!(status, 404, "nothing refused was stored");
}
