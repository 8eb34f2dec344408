//! Servers started side by side, each creating a bucket the moment it is listening: every
//! connection to a server's port must reach that server (with SO_REUSEPORT, two processes of
//! one user that bind the same port share its connections), and every core must know the
//! bucket (a core still fetching the bucket table at start-up must not lose a bucket created
//! meanwhile). Starting several servers at once on a small machine makes cores start late.

use crate::harness::*;

/// Servers started at once; each reserves 2 GiB of disk (a 1 GiB segment per core), so rounds
/// of a few rather than many at once.
const SERVERS_PER_ROUND: usize = 4;
const ROUNDS: usize = 3;
const CONNECTIONS_PER_SERVER: usize = 30;

#[test]
fn buckets_created_right_after_start_reach_every_core() {
    for round in 0..ROUNDS {
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..SERVERS_PER_ROUND)
                .map(|index| scope.spawn(move || start_create_check(round * SERVERS_PER_ROUND + index)))
                .collect();
            for handle in handles {
                handle.join().expect("server thread");
            }
        });
    }
}

fn start_create_check(index: usize) {
    let server = Server::start(&format!("isolation-{index}"));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    let bucket = format!("cs-server-{index}");
    runtime.block_on(create_bucket(&server.client(), &bucket));
    let own = format!("/{bucket}/k");
    for attempt in 0..CONNECTIONS_PER_SERVER {
        // Anonymous: an existing private bucket answers AccessDenied, a missing one (another
        // server, or a core without the bucket) NoSuchBucket. Each request is a new connection,
        // so the kernel spreads them over the cores.
        let response = raw_request(server.port, "GET", &own, &[], b"");
        let code = xml_element(&response.body_text(), "Code").map(str::to_string);
        if code.as_deref() != Some("AccessDenied") {
            // Tell the two causes apart: another server lists its own bucket, a core of this
            // server with a stale table lists none.
            let seen: Vec<Vec<String>> = (0..8)
                .map(|_| {
                    runtime.block_on(async {
                        let listing = server.client().list_buckets().send().await.ok_or_panic("ListBuckets");
                        listing.buckets().iter().filter_map(|b| b.name().map(str::to_string)).collect()
                    })
                })
                .collect();
            panic!(
                "server {index} (port {}), connection {attempt}: reached a core or server without the bucket: {}\n\
                 ListBuckets on 8 new connections: {seen:?}",
                server.port,
                response.body_text()
            );
        }
    }
}
