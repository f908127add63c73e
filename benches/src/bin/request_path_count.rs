//! Drives the request-path variants outside criterion:
//!
//! ```text
//! request_path_count VARIANT N          # N requests of one variant (for callgrind)
//! request_path_count --interleave R N   # R rounds of N requests of every variant, in turn
//! ```
//!
//! VARIANT is `baseline`, `fault_at_0pct` or `retry_untriggered`. `benches/callgrind.sh` runs
//! the first form twice per variant (N and 2N requests) and divides the difference, so set-up
//! cost cancels out. The second form measures wall time with the variants interleaved round by
//! round, so a machine whose load changes during the run slows every variant alike; it prints
//! the median time per request of each and the median of the per-round ratios to the
//! baseline.

use tokio::time::Instant;

use mesh_benches::request_path::{Variant, one, proxy};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: request_path_count VARIANT N | --interleave ROUNDS N";
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    match args.as_slice() {
        [flag, rounds, n] if flag == "--interleave" => {
            let rounds: usize = rounds.parse().expect(usage);
            let n: u32 = n.parse().expect(usage);
            rt.block_on(interleave(rounds, n));
        }
        [variant, n] => {
            let variant = Variant::from_name(variant).expect(usage);
            let n: u64 = n.parse().expect(usage);
            rt.block_on(async {
                let p = proxy(variant);
                for _ in 0..n {
                    assert_eq!(one(&p).await, 200);
                }
            });
        }
        _ => panic!("{usage}"),
    }
}

async fn interleave(rounds: usize, n: u32) {
    let proxies: Vec<_> = Variant::ALL.into_iter().map(|v| (v, proxy(v))).collect();
    let mut per_request: Vec<Vec<f64>> = vec![Vec::new(); proxies.len()];
    for round in 0..rounds + 1 {
        for (i, (_, p)) in proxies.iter().enumerate() {
            let start = Instant::now();
            for _ in 0..n {
                assert_eq!(one(p).await, 200);
            }
            if round > 0 {
                // Round 0 warms up.
                per_request[i].push(start.elapsed().as_secs_f64() * 1e9 / f64::from(n));
            }
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "{:<20} {:>12} {:>16}",
        "variant", "ns/request", "ratio (median)"
    );
    for (i, (v, _)) in proxies.iter().enumerate() {
        let mut ratios: Vec<f64> = per_request[i]
            .iter()
            .zip(&per_request[0])
            .map(|(t, b)| t / b)
            .collect();
        let m = median(&mut per_request[i].clone());
        println!("{:<20} {:>12.0} {:>16.3}", v.name(), m, median(&mut ratios));
    }
}
