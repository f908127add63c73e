//! Bookinfo with both proxies configured only over ADS, from the toolkit's control plane
//! serving the same Istio YAML: the scenarios a user sees, and a service scaling out (only its
//! endpoints pushed, the new host in `/clusters`, traffic reaching both).

use std::collections::BTreeSet;
use std::fmt::Write as _;

use mesh_examples::bookinfo::{Demo, DemoOptions, SERVICE_PORT, Scenario, Workload};
use mesh_proxy::test_util::{Behavior, Client, Upstream};
use mesh_xds::xds::resource::ResourceType;

async fn start(opts: DemoOptions) -> Demo {
    Demo::start(opts.over_ads().random_seed(7))
        .await
        .unwrap_or_else(|e| panic!("{e}: {:?}", std::error::Error::source(&e)))
}

async fn reviews_seen(
    demo: &Demo,
    client: &Client,
    user: Option<&str>,
    n: usize,
) -> BTreeSet<String> {
    let headers: Vec<(&str, &str)> = user.map(|u| ("end-user", u)).into_iter().collect();
    let mut seen = BTreeSet::new();
    for _ in 0..n {
        let r = client
            .get(demo.gateway_addr(), "/productpage", &headers)
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        seen.insert(r.header("x-reviews-version").to_owned());
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenarios_over_ads() {
    let demo = start(DemoOptions::default()).await;
    let client = Client::http1();
    // Plain Bookinfo: reviews spread over the three versions.
    assert_eq!(reviews_seen(&demo, &client, None, 30).await.len(), 3);

    // Jason gets v2, everyone else v1: pushed by the control plane, taken by both proxies.
    demo.apply(&Scenario::JasonV2.yaml()).await.unwrap();
    assert_eq!(
        reviews_seen(&demo, &client, Some("jason"), 5).await,
        BTreeSet::from(["v2".to_owned()])
    );
    assert_eq!(
        reviews_seen(&demo, &client, None, 5).await,
        BTreeSet::from(["v1".to_owned()])
    );

    // Everything to v1.
    demo.apply(&Scenario::V1.yaml()).await.unwrap();
    assert_eq!(
        reviews_seen(&demo, &client, Some("jason"), 5).await,
        BTreeSet::from(["v1".to_owned()])
    );

    // The proxies' admin shows what came over ADS.
    demo.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn details_scales_from_one_instance_to_two_with_an_eds_push_only() {
    let sidecar_admin = "127.0.0.1:0".parse().unwrap();
    let gateway_admin = "127.0.0.1:0".parse().unwrap();
    let demo = start(DemoOptions::default().admin(sidecar_admin, gateway_admin)).await;
    let client = Client::http1();
    let pilot = demo.pilot().expect("over ADS");
    let statuses = |c: &mesh_xds::xds::server::SnapshotCache| c.statuses();
    let before = statuses(pilot.cache());

    // A second details instance, and the ServiceEntry that names both (as a Kubernetes
    // Service's endpoints would after a scale-out).
    let second = Upstream::start("details-2", Behavior::Identify).await;
    let first = demo.bookinfo().addr(Workload::Details);
    let mut yaml = String::new();
    let _ = write!(
        yaml,
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\n\
         metadata: {{ name: details, namespace: default }}\n\
         spec:\n  hosts: [details]\n  location: MESH_INTERNAL\n\
         \x20 ports: [{{ number: {SERVICE_PORT}, name: http, protocol: HTTP }}]\n\
         \x20 resolution: STATIC\n  endpoints:\n\
         \x20 - {{ address: {}, ports: {{ http: {} }}, labels: {{ app: details, version: v1 }} }}\n\
         \x20 - {{ address: {}, ports: {{ http: {} }}, labels: {{ app: details, version: v1 }} }}\n",
        first.ip(),
        first.port(),
        second.addr().ip(),
        second.addr().port()
    );
    demo.apply(&yaml).await.unwrap();

    // Only endpoints were pushed, to both proxies.
    let after = statuses(pilot.cache());
    assert_eq!(after.len(), 2, "{after:#?}");
    for (node, s) in &after {
        let b = &before[node];
        for t in [
            ResourceType::Cluster,
            ResourceType::Listener,
            ResourceType::Route,
        ] {
            assert_eq!(
                s.types.get(&t).map(|t| t.responses),
                b.types.get(&t).map(|t| t.responses),
                "{node}: {t} resent"
            );
        }
        assert!(
            s.types[&ResourceType::Endpoints].responses
                > b.types[&ResourceType::Endpoints].responses,
            "{node}: EDS not pushed"
        );
    }

    // The sidecar's /clusters lists the new host, healthy.
    let admin = demo.sidecar().admin_addr().unwrap();
    let clusters = client.get(admin, "/clusters", &[]).await.text();
    let cluster = "outbound|9080||details.default.svc.cluster.local";
    assert!(
        clusters.contains(&format!(
            "{cluster}::{}::health_flags::healthy",
            second.addr()
        )),
        "{clusters}"
    );
    assert!(
        clusters.contains(&format!("{cluster}::added_via_api::true")),
        "{clusters}"
    );

    // Traffic reaches both instances.
    let details_before = demo.bookinfo().requests(Workload::Details);
    for _ in 0..20 {
        let r = client
            .get(
                demo.sidecar_addr(),
                "/details/0",
                &[("host", "details:9080")],
            )
            .await;
        assert_eq!(r.status, 200);
    }
    assert!(second.requests() > 0, "the new instance got no request");
    assert!(demo.bookinfo().requests(Workload::Details) > details_before);
    demo.shutdown().await;
}
