//! The request path in process, without sockets: `Proxy::handle` → connection manager →
//! filter chain → router (route, cluster, host, retry bookkeeping) → an in-memory upstream.
//! One run measures the baseline (empty chain, no retry policy) beside the fault filter
//! configured at 0% and a retry policy that is configured but never triggered, so each
//! feature's standing cost reads as a ratio. Instruction counts for the same variants:
//! `benches/callgrind.sh`.
//!
//! ```text
//! cargo bench -p mesh-benches --bench request_path
//! ```

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use mesh_benches::request_path::{Variant, one, proxy};

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut g = c.benchmark_group("request_path");
    for v in Variant::ALL {
        let p = rt.block_on(async { proxy(v) });
        assert_eq!(rt.block_on(one(&p)), 200);
        g.bench_function(v.name(), |b| b.iter(|| black_box(rt.block_on(one(&p)))));
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
