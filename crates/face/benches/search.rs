//! 1:N search over synthetic galleries of 10k, 100k and 1M templates (fixed seed), one
//! thread: the index's three-pass search (4-bit and int8 passes, exact f32 re-scoring) side by side
//! with the exhaustive f32 scan it must equal.
//!
//! First a latency table (p50 and p99 of single searches over a probe set, half of them
//! strangers, half near an enrolled face; the three-pass search on one thread and with its
//! first pass split across the machine's cores; and bytes per template), then criterion's
//! figures (one thread).

use std::hint::black_box;
use std::time::Instant;

use criterion::{BenchmarkId, Criterion, criterion_group};
use rollcall_face::{EMBEDDING_DIM, Embedding, ExactIndex, FaceIndex, Fusion, Template};

const SIZES: [usize; 3] = [10_000, 100_000, 1_000_000];
/// Threads of the split first pass in the latency table: this machine's cores.
static CORES: std::sync::LazyLock<usize> =
    std::sync::LazyLock::new(|| std::thread::available_parallelism().map_or(1, usize::from));
/// Probes per size in the latency table.
const PROBES: usize = 1_000;

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

    /// `face` moved by noise: the same person in another photo (similarity ≈ 0.7).
    fn near(&mut self, face: &Embedding) -> Embedding {
        let v: Vec<f32> = face.as_slice().iter().map(|x| x + 0.06 * self.next_f32()).collect();
        Embedding::new(&v).unwrap()
    }
}

/// Galleries grown in place from one seed: each size holds the smaller ones.
struct Galleries {
    rng: Rng,
    index: ExactIndex,
    faces: Vec<Embedding>,
}

impl Galleries {
    fn new() -> Self {
        let mut index = ExactIndex::new(Fusion::BestOf);
        index.reserve(SIZES[2], SIZES[2]);
        // One thread unless a figure says otherwise.
        index.set_search_threads(1);
        Self { rng: Rng(0x5EED_1234_ABCD_0001), index, faces: Vec::new() }
    }

    fn grow_to(&mut self, size: usize) -> &ExactIndex {
        while self.faces.len() < size {
            let face = self.rng.embedding();
            self.index.upsert(&format!("user-{}", self.faces.len()), &Template::new(vec![face.clone()]).unwrap());
            self.faces.push(face);
        }
        &self.index
    }

    fn probes(&mut self) -> Vec<Embedding> {
        (0..PROBES)
            .map(|k| match k % 2 {
                0 => self.rng.embedding(),
                _ => {
                    let face = self.faces[(k * 7919) % self.faces.len()].clone();
                    self.rng.near(&face)
                }
            })
            .collect()
    }
}

fn percentiles(mut times: Vec<f64>) -> (f64, f64) {
    times.sort_by(f64::total_cmp);
    let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.99))
}

fn latency(probes: &[Embedding], search: impl Fn(&Embedding)) -> (f64, f64) {
    percentiles(
        probes
            .iter()
            .map(|probe| {
                let start = Instant::now();
                search(probe);
                start.elapsed().as_secs_f64() * 1e3
            })
            .collect(),
    )
}

fn latency_table() {
    let mut galleries = Galleries::new();
    println!(
        "| templates | search p50 | search p99 | split across cores p50 | split p99 | exhaustive f32 p50 | exhaustive f32 p99 | bytes per template |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for size in SIZES {
        galleries.grow_to(size);
        let probes = galleries.probes();
        let index = &mut galleries.index;
        index.set_search_threads(*CORES);
        for probe in &probes {
            assert_eq!(index.search(probe), index.search_exhaustive(probe), "the two searches differ");
        }
        let (split50, split99) = latency(&probes, |p| {
            black_box(index.search(black_box(p)));
        });
        index.set_search_threads(1);
        let (fast50, fast99) = latency(&probes, |p| {
            black_box(index.search(black_box(p)));
        });
        let (slow50, slow99) = latency(&probes, |p| {
            black_box(index.search_exhaustive(black_box(p)));
        });
        let bytes = index.heap_bytes() as f64 / size as f64;
        println!(
            "| {size} | {fast50:.2} ms | {fast99:.2} ms | {split50:.2} ms | {split99:.2} ms | {slow50:.2} ms | {slow99:.2} ms | {bytes:.0} |"
        );
    }
}

fn search(c: &mut Criterion) {
    let mut galleries = Galleries::new();
    let mut g = c.benchmark_group("search");
    g.sample_size(20);
    for size in SIZES {
        let index = galleries.grow_to(size);
        let probe = Rng(size as u64).embedding();
        g.throughput(criterion::Throughput::Elements(size as u64));
        g.bench_with_input(BenchmarkId::new("three_pass", size), &size, |b, _| {
            b.iter(|| index.search(black_box(&probe)))
        });
        g.bench_with_input(BenchmarkId::new("exhaustive_f32", size), &size, |b, _| {
            b.iter(|| index.search_exhaustive(black_box(&probe)))
        });
    }
    g.finish();
}

criterion_group!(benches, search);

fn main() {
    latency_table();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
