//! Runs N requests of one request-path variant, for instruction counts under callgrind:
//!
//! ```text
//! request_path_count VARIANT N     # VARIANT: baseline | fault_at_0pct | retry_untriggered
//! ```
//!
//! `benches/callgrind.sh` runs it twice per variant (N and 2N requests) and divides the
//! difference, so set-up and runtime start cost cancel out.

fn main() {
    let mut args = std::env::args().skip(1);
    let usage = "usage: request_path_count VARIANT N";
    let variant = args
        .next()
        .and_then(|v| mesh_benches::request_path::Variant::from_name(&v))
        .expect(usage);
    let n: u64 = args.next().and_then(|n| n.parse().ok()).expect(usage);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    rt.block_on(async {
        let proxy = mesh_benches::request_path::proxy(variant);
        for _ in 0..n {
            assert_eq!(mesh_benches::request_path::one(&proxy).await, 200);
        }
    });
}
