//! 1:N search over enrolled templates.
//!
//! [`FaceIndex`] is the seam for an approximate index later; [`ExactIndex`] gives the
//! result of comparing the probe with every row it searches: each enrolled embedding under
//! [`Fusion::BestOf`], each identity's mean under [`Fusion::Mean`], and nothing else (a
//! row costs memory for every enrolled person). Rows live in one contiguous `Vec<f32>` (a
//! row of [`EMBEDDING_DIM`] floats each) with a 4-bit and an int8 copy beside it: a search
//! is a straight pass over the 4-bit rows, then an int8 pass over the rows its error bound
//! cannot rule out, then an exact f32 pass over the few left, so its result is the
//! exhaustive scan's.

mod kernel;
mod nibbles;
mod quantized;

use std::collections::HashMap;

use nibbles::NibbleRows;
use quantized::{QuantizedProbe, QuantizedRows};

use serde::{Deserialize, Serialize};

use crate::embed::{EMBEDDING_DIM, Embedding, Template, dot};

/// How a person's several embeddings are scored against a probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fusion {
    /// The highest similarity over the person's individual embeddings.
    #[default]
    BestOf,
    /// The similarity to the normalised mean of the person's embeddings.
    Mean,
}

/// One identity's score for a probe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchHit {
    /// The identity (the server's user id).
    pub identity: String,
    /// Cosine similarity in [-1, 1] under the index's [`Fusion`].
    pub similarity: f32,
}

/// The two best identities for a probe.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SearchResult {
    /// Best-scoring identity, `None` for an empty index.
    pub best: Option<SearchHit>,
    /// Best-scoring identity other than `best`, `None` with fewer than two identities.
    pub second: Option<SearchHit>,
}

impl SearchResult {
    /// `best − second` similarity; with a single enrolled identity the margin is taken to
    /// the worst possible score (−1), i.e. `best + 1`.
    pub fn margin(&self) -> Option<f32> {
        let best = self.best.as_ref()?.similarity;
        Some(best - self.second.as_ref().map_or(-1.0, |s| s.similarity))
    }
}

/// A searchable gallery of enrolled identities.
pub trait FaceIndex: Send + Sync {
    /// Adds an identity, or replaces all of its embeddings if it is already enrolled.
    fn upsert(&mut self, identity: &str, template: &Template);
    /// Removes an identity; returns whether it was enrolled.
    fn remove(&mut self, identity: &str) -> bool;
    /// Whether the identity is enrolled.
    fn contains(&self, identity: &str) -> bool;
    /// Number of enrolled identities.
    fn len(&self) -> usize;
    /// Whether no identity is enrolled.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The best and second-best identities for `probe`.
    fn search(&self, probe: &Embedding) -> SearchResult;
}

/// Exact cosine search over every row the fusion scores.
#[derive(Debug, Clone, Default)]
pub struct ExactIndex {
    fusion: Fusion,
    /// Identity of each slot; slots are compacted on removal.
    identities: Vec<String>,
    slots: HashMap<String, u32>,
    /// The rows searched: one per embedding under best-of, one per identity (its mean)
    /// under mean fusion.
    rows: Vec<f32>,
    /// Slot owning each row of `rows`.
    row_slots: Vec<u32>,
    /// int8 copy of `rows`, for the second pass.
    row_codes: QuantizedRows,
    /// 4-bit copy of `rows`, for the first pass.
    row_nibbles: NibbleRows,
    /// Threads the first pass is split across; 0: chosen by the gallery's size.
    search_threads: usize,
}

/// Galleries with at least this many rows have their first pass split across threads: its
/// scan then takes about a millisecond, twenty times what starting a thread costs.
pub const SPLIT_SCAN_MIN_ROWS: usize = 250_000;

/// Slot of "no identity yet".
const NO_SLOT: u32 = u32::MAX;

/// The best and second-best *identity* seen so far, an identity scoring the max over its
/// rows. Ties go to the earlier row, so a scan over any subset of rows that keeps every row
/// scoring at least the final second-best, in order, ends in the same state as over all.
#[derive(Debug, Clone, Copy)]
struct TopTwo<S> {
    best: (u32, S),
    second: (u32, S),
}

impl<S: PartialOrd + Copy> TopTwo<S> {
    fn new(floor: S) -> Self {
        Self { best: (NO_SLOT, floor), second: (NO_SLOT, floor) }
    }

    fn offer(&mut self, owner: u32, score: S) {
        if owner == self.best.0 {
            if score > self.best.1 {
                self.best.1 = score;
            }
        } else if score > self.best.1 {
            self.second = self.best;
            self.best = (owner, score);
        } else if owner == self.second.0 {
            if score > self.second.1 {
                self.second.1 = score;
            }
        } else if score > self.second.1 {
            self.second = (owner, score);
        }
    }
    /// What offering every row `other` saw would leave, as far as the best two go: its
    /// best and second identities at their scores.
    fn merge(&mut self, other: &Self) {
        self.offer(other.best.0, other.best.1);
        self.offer(other.second.0, other.second.1);
    }
}

impl ExactIndex {
    /// An empty index scoring identities with `fusion`, for good: it keeps only the rows
    /// that fusion searches.
    pub fn new(fusion: Fusion) -> Self {
        Self { fusion, ..Self::default() }
    }

    /// Splits the first pass of each search across `threads` threads. 0, the default,
    /// chooses by size: one thread per core from [`SPLIT_SCAN_MIN_ROWS`] rows, below that
    /// the calling thread alone.
    pub fn set_search_threads(&mut self, threads: usize) {
        self.search_threads = threads;
    }

    fn first_pass_threads(&self) -> usize {
        static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
        match self.search_threads {
            0 if self.row_count() >= SPLIT_SCAN_MIN_ROWS => {
                *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, usize::from))
            }
            0 => 1,
            threads => threads,
        }
    }

    /// The fusion in use.
    pub fn fusion(&self) -> Fusion {
        self.fusion
    }

    /// Number of rows searched: embeddings under best-of, identities under mean fusion.
    pub fn row_count(&self) -> usize {
        self.row_slots.len()
    }

    /// Reserves room for `identities` identities with `embeddings` embeddings in total.
    pub fn reserve(&mut self, identities: usize, embeddings: usize) {
        let rows = match self.fusion {
            Fusion::BestOf => embeddings,
            Fusion::Mean => identities,
        };
        self.identities.reserve(identities);
        self.slots.reserve(identities);
        self.rows.reserve(rows * EMBEDDING_DIM);
        self.row_codes.reserve(rows);
        self.row_nibbles.reserve(rows);
        self.row_slots.reserve(rows);
    }

    /// Bytes held by the rows (f32, int8 and 4-bit copies, owners) and the identity
    /// strings, without allocator slack or the hash map's own table.
    pub fn heap_bytes(&self) -> usize {
        let codes = self.row_codes.heap_bytes() + self.row_nibbles.heap_bytes();
        let names: usize = self.identities.iter().map(String::len).sum();
        self.rows.len() * size_of::<f32>() + codes + self.row_slots.len() * size_of::<u32>() + 2 * names
    }

    /// The search by comparing the probe with every row in f32: the reference the
    /// three-pass [`FaceIndex::search`] must equal, and what it is benchmarked against.
    pub fn search_exhaustive(&self, probe: &Embedding) -> SearchResult {
        self.rescore(probe.as_slice(), 0..self.row_count())
    }

    fn owner(&self, row: usize) -> u32 {
        self.row_slots[row]
    }

    /// The exact f32 scan over the given rows, in the order given.
    fn rescore(&self, probe: &[f32], candidates: impl IntoIterator<Item = usize>) -> SearchResult {
        let mut top = TopTwo::new(f32::NEG_INFINITY);
        for i in candidates {
            top.offer(self.owner(i), dot(probe, &self.rows[i * EMBEDDING_DIM..(i + 1) * EMBEDDING_DIM]));
        }
        let hit = |(slot, similarity): (u32, f32)| {
            (slot != NO_SLOT).then(|| SearchHit { identity: self.identities[slot as usize].clone(), similarity })
        };
        SearchResult { best: hit(top.best), second: hit(top.second) }
    }
}

impl FaceIndex for ExactIndex {
    fn upsert(&mut self, identity: &str, template: &Template) {
        self.remove(identity);
        let slot = self.identities.len() as u32;
        self.identities.push(identity.to_string());
        self.slots.insert(identity.to_string(), slot);
        let rows = match self.fusion {
            Fusion::BestOf => template.embeddings(),
            Fusion::Mean => std::slice::from_ref(template.mean()),
        };
        for e in rows {
            self.rows.extend_from_slice(e.as_slice());
            self.row_codes.push(e.as_slice());
            self.row_nibbles.push(e.as_slice());
            self.row_slots.push(slot);
        }
    }

    fn remove(&mut self, identity: &str) -> bool {
        let Some(slot) = self.slots.remove(identity) else {
            return false;
        };
        // Drop the slot's rows, then renumber the slots above it.
        let mut write = 0;
        for read in 0..self.row_slots.len() {
            let owner = self.row_slots[read];
            if owner == slot {
                continue;
            }
            if write != read {
                self.rows.copy_within(read * EMBEDDING_DIM..(read + 1) * EMBEDDING_DIM, write * EMBEDDING_DIM);
                self.row_codes.move_row(read, write);
                self.row_nibbles.move_row(read, write);
            }
            self.row_slots[write] = if owner > slot { owner - 1 } else { owner };
            write += 1;
        }
        self.row_slots.truncate(write);
        self.rows.truncate(write * EMBEDDING_DIM);
        self.row_codes.truncate(write);
        self.row_nibbles.truncate(write);
        self.identities.remove(slot as usize);
        for v in self.slots.values_mut() {
            if *v > slot {
                *v -= 1;
            }
        }
        true
    }

    fn contains(&self, identity: &str) -> bool {
        self.slots.contains_key(identity)
    }

    fn len(&self) -> usize {
        self.identities.len()
    }

    /// Three passes: the 4-bit rows pick candidates, the int8 rows narrow them, f32
    /// re-scores the rest. Each pass keeps every row that can reach the second-best
    /// identity's real score, in order (see `NibbleRows::candidates` and
    /// `QuantizedRows::candidates_among`), so the result is
    /// [`ExactIndex::search_exhaustive`]'s.
    fn search(&self, probe: &Embedding) -> SearchResult {
        let coded = QuantizedProbe::new(probe.as_slice());
        let owner = |row| self.owner(row);
        let coarse = self.row_nibbles.candidates(&coded, owner, self.first_pass_threads());
        let candidates = self.row_codes.candidates_among(&coded, &coarse, owner);
        self.rescore(probe.as_slice(), candidates)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic pseudo-random unit vectors (xorshift), no extra dependency.
    pub(crate) fn synthetic(seed: u64) -> Embedding {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let v: Vec<f32> = (0..EMBEDDING_DIM)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
            })
            .collect();
        Embedding::new(&v).unwrap()
    }

    fn near(e: &Embedding, seed: u64, noise: f32) -> Embedding {
        let n = synthetic(seed);
        let v: Vec<f32> = e.as_slice().iter().zip(n.as_slice()).map(|(a, b)| a + noise * b).collect();
        Embedding::new(&v).unwrap()
    }

    #[test]
    fn finds_the_right_identity_with_margin() {
        let people: Vec<Embedding> = (0..50).map(synthetic).collect();
        let templates: Vec<Template> = people
            .iter()
            .enumerate()
            .map(|(i, p)| Template::new(vec![near(p, 1000 + i as u64, 0.3), near(p, 2000 + i as u64, 0.3)]).unwrap())
            .collect();
        for fusion in [Fusion::BestOf, Fusion::Mean] {
            let mut index = ExactIndex::new(fusion);
            for (i, t) in templates.iter().enumerate() {
                index.upsert(&format!("user-{i}"), t);
            }
            assert_eq!(index.len(), 50);
            assert_eq!(index.row_count(), if fusion == Fusion::BestOf { 100 } else { 50 });
            let probe = near(&people[17], 99, 0.3);
            let r = index.search(&probe);
            let best = r.best.clone().unwrap();
            let second = r.second.clone().unwrap();
            assert_eq!(best.identity, "user-17");
            assert_ne!(second.identity, "user-17");
            assert!(best.similarity > 0.7, "{best:?}");
            assert!((r.margin().unwrap() - (best.similarity - second.similarity)).abs() < 1e-6);
            // The second identity is really the best of the rest.
            let expected_second = (0..50)
                .filter(|&i| i != 17)
                .map(|i| match fusion {
                    Fusion::BestOf => templates[i].best_cosine(&probe),
                    Fusion::Mean => templates[i].mean().cosine(&probe),
                })
                .fold(f32::NEG_INFINITY, f32::max);
            assert!((second.similarity - expected_second).abs() < 1e-6);
        }
    }

    #[test]
    fn replace_and_remove() {
        let mut index = ExactIndex::new(Fusion::BestOf);
        let (a, b, c) = (synthetic(1), synthetic(2), synthetic(3));
        index.upsert("a", &Template::new(vec![a.clone()]).unwrap());
        index.upsert("b", &Template::new(vec![b.clone()]).unwrap());
        index.upsert("c", &Template::new(vec![c.clone()]).unwrap());
        assert_eq!(index.search(&b).best.unwrap().identity, "b");
        // Replace b's face with c's: a probe of b no longer finds b first.
        index.upsert("b", &Template::new(vec![c.clone(), c.clone()]).unwrap());
        assert_eq!(index.len(), 3);
        assert_eq!(index.row_count(), 4);
        let r = index.search(&b);
        assert!(r.best.unwrap().similarity < 0.5);
        assert!(index.remove("a"));
        assert!(!index.remove("a"));
        assert!(!index.contains("a"));
        assert_eq!(index.search(&a).best.map(|h| h.identity).as_deref().map(|s| s != "a"), Some(true));
        let r = index.search(&c);
        assert!((r.best.as_ref().unwrap().similarity - 1.0).abs() < 1e-5);
        assert!((r.second.as_ref().unwrap().similarity - 1.0).abs() < 1e-5);
        assert!(index.remove("b") && index.remove("c"));
        assert!(index.is_empty());
        assert_eq!(index.search(&c), SearchResult::default());
        assert_eq!(SearchResult::default().margin(), None);
    }

    /// A gallery of `people` identities of one to three embeddings each; every tenth
    /// identity is a near-duplicate of the one before (tiny margins), and a few are exact
    /// copies (ties).
    fn gallery(seed: u64, people: usize, fusion: Fusion) -> (ExactIndex, Vec<Embedding>) {
        let mut index = ExactIndex::new(fusion);
        let mut faces: Vec<Embedding> = Vec::with_capacity(people);
        for i in 0..people {
            let id = seed * 10_000_000 + i as u64;
            let face = match i % 10 {
                9 if i % 100 == 99 => faces[i - 1].clone(),
                9 => near(&faces[i - 1], id + 1, 0.02),
                _ => synthetic(id),
            };
            let template: Vec<Embedding> = (0..1 + i % 3).map(|k| near(&face, id * 7 + k as u64, 0.1)).collect();
            index.upsert(&format!("user-{i}"), &Template::new(template).unwrap());
            faces.push(face);
        }
        (index, faces)
    }

    /// Probes near enrolled faces (near-duplicates included), exactly on one, and random.
    fn probes(faces: &[Embedding], seed: u64, count: usize) -> Vec<Embedding> {
        (0..count as u64)
            .map(|k| {
                let face = &faces[(k as usize * 7919 + 9) % faces.len()];
                match k % 4 {
                    0 => synthetic(seed + k),
                    1 => face.clone(),
                    2 => near(face, seed + k, 0.05),
                    _ => near(face, seed + k, 0.4),
                }
            })
            .collect()
    }

    fn assert_same_as_exhaustive(index: &ExactIndex, probes: &[Embedding]) {
        for (k, probe) in probes.iter().enumerate() {
            assert_eq!(index.search(probe), index.search_exhaustive(probe), "probe {k}, {:?}", index.fusion());
        }
    }

    #[test]
    fn three_pass_search_equals_the_exhaustive_scan() {
        for fusion in [Fusion::BestOf, Fusion::Mean] {
            let (mut index, faces) = gallery(1, 20_000, fusion);
            assert_same_as_exhaustive(&index, &probes(&faces, 500, 400));
            // Replace some identities (one by a copy of another: exact ties), remove others.
            for i in (0..20_000).step_by(97) {
                let face = if i % 2 == 0 { faces[i + 1].clone() } else { synthetic(900_000 + i as u64) };
                index.upsert(&format!("user-{i}"), &Template::new(vec![face.clone(), near(&face, 3, 0.05)]).unwrap());
            }
            for i in (5..20_000).step_by(89) {
                assert!(index.remove(&format!("user-{i}")));
            }
            assert_same_as_exhaustive(&index, &probes(&faces, 700, 400));
        }
    }

    #[test]
    fn a_first_pass_split_across_threads_equals_the_exhaustive_scan() {
        for fusion in [Fusion::BestOf, Fusion::Mean] {
            let (index, faces) = gallery(3, 20_000, fusion);
            // Uneven shares, and more threads than the gallery has chunks of blocks for.
            for threads in [2, 3, 7, 2_000] {
                let mut index = index.clone();
                index.set_search_threads(threads);
                assert_same_as_exhaustive(&index, &probes(&faces, 300 + threads as u64, 200));
            }
        }
    }

    #[test]
    fn three_pass_search_equals_the_exhaustive_scan_at_200k() {
        for fusion in [Fusion::BestOf, Fusion::Mean] {
            let (index, faces) = gallery(2, 200_000, fusion);
            assert_same_as_exhaustive(&index, &probes(&faces, 900, 40));
        }
    }

    /// Each coded pass rules out most of what reaches it, for strangers and for enrolled
    /// people alike: without that, the search would be right but no faster than f32.
    #[test]
    fn each_coded_pass_narrows_the_rows() {
        let (index, faces) = gallery(4, 20_000, Fusion::BestOf);
        let owner = |row| index.owner(row);
        for probe in [synthetic(77), near(&faces[1234], 5, 0.4)] {
            let coded = QuantizedProbe::new(probe.as_slice());
            let coarse = index.row_nibbles.candidates(&coded, owner, 1);
            let fine = index.row_codes.candidates_among(&coded, &coarse, owner);
            let rows = index.row_count();
            assert!(coarse.len() * 10 < rows, "4-bit pass kept {} of {rows}", coarse.len());
            assert!(fine.len() * 10 < coarse.len().max(10), "int8 pass kept {} of {}", fine.len(), coarse.len());
        }
    }

    #[test]
    fn three_pass_search_on_tiny_galleries() {
        for fusion in [Fusion::BestOf, Fusion::Mean] {
            let mut index = ExactIndex::new(fusion);
            let a = synthetic(11);
            assert_eq!(index.search(&a), SearchResult::default());
            index.upsert("a", &Template::new(vec![a.clone(), near(&a, 1, 0.3)]).unwrap());
            assert_same_as_exhaustive(&index, &[a.clone(), synthetic(12)]);
            index.upsert("b", &Template::new(vec![a.clone()]).unwrap());
            assert_same_as_exhaustive(&index, &[a.clone(), synthetic(12)]);
        }
    }

    /// The comparison can fail: a search that drops the best row differs from the reference.
    #[test]
    fn the_reference_scan_notices_a_missed_row() {
        let (index, faces) = gallery(3, 1_000, Fusion::BestOf);
        let probe = faces[500].clone();
        let best_row = (0..index.row_count())
            .max_by(|&i, &j| {
                let score = |r: usize| dot(probe.as_slice(), &index.rows[r * EMBEDDING_DIM..(r + 1) * EMBEDDING_DIM]);
                score(i).total_cmp(&score(j))
            })
            .unwrap();
        let missing = index.rescore(probe.as_slice(), (0..index.row_count()).filter(|&r| r != best_row));
        assert_ne!(missing, index.search_exhaustive(&probe));
        assert_eq!(index.search(&probe), index.search_exhaustive(&probe));
    }

    #[test]
    fn single_identity_margin_is_to_minus_one() {
        let mut index = ExactIndex::new(Fusion::Mean);
        let a = synthetic(5);
        index.upsert("a", &Template::new(vec![a.clone()]).unwrap());
        let r = index.search(&a);
        assert!(r.second.is_none());
        assert!((r.margin().unwrap() - 2.0).abs() < 1e-5);
    }
}
