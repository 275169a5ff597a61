//! Exact 1:N search over synthetic galleries of 10k, 100k and 1M templates (fixed seed),
//! one thread.
//!
//! What the numbers should show: time linear in the gallery size (one pass over
//! 512 bytes per template), 100k templates under the 10 ms target.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use rollcall_face::{EMBEDDING_DIM, Embedding, ExactIndex, FaceIndex, Fusion, Template};

/// xorshift64*: deterministic and dependency-free.
struct Rng(u64);

impl Rng {
    fn next_f32(&mut self) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        ((self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40) as f32 / (1u64 << 24) as f32) - 0.5
    }

    fn embedding(&mut self) -> Embedding {
        let v: Vec<f32> = (0..EMBEDDING_DIM).map(|_| self.next_f32()).collect();
        Embedding::new(&v).unwrap()
    }
}

fn search(c: &mut Criterion) {
    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    let probe = rng.embedding();
    let mut g = c.benchmark_group("search_exact");
    g.sample_size(20);
    let mut index = ExactIndex::new(Fusion::BestOf);
    let mut size = 0usize;
    for target in [10_000usize, 100_000, 1_000_000] {
        index.reserve(target, target);
        while size < target {
            index.upsert(&format!("user-{size}"), &Template::new(vec![rng.embedding()]).unwrap());
            size += 1;
        }
        g.throughput(criterion::Throughput::Elements(target as u64));
        g.bench_with_input(BenchmarkId::new("best_of", target), &target, |b, _| {
            b.iter(|| index.search(black_box(&probe)))
        });
    }
    g.finish();
}

criterion_group!(benches, search);
criterion_main!(benches);
