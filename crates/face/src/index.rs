//! 1:N search over enrolled templates.
//!
//! [`FaceIndex`] is the seam for an approximate index later; [`ExactIndex`] gives the
//! result of comparing the probe with every enrolled embedding. Embeddings live in one
//! contiguous `Vec<f32>` (a row of [`EMBEDDING_DIM`] floats each) with an int8 copy beside
//! it: a search is a straight pass over the int8 rows, then an exact f32 pass over the few
//! rows the int8 error bound cannot rule out, so its result is the exhaustive scan's.

mod kernel;
mod quantized;

use std::collections::HashMap;

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

/// Exact cosine search over every embedding.
#[derive(Debug, Clone, Default)]
pub struct ExactIndex {
    fusion: Fusion,
    /// Identity of each slot; slots are compacted on removal.
    identities: Vec<String>,
    slots: HashMap<String, u32>,
    /// Individual embeddings, one row per embedding.
    rows: Vec<f32>,
    /// Slot owning each row of `rows`.
    row_slots: Vec<u32>,
    /// Mean template per slot, one row per slot.
    means: Vec<f32>,
    /// int8 copy of `rows`, for the first pass.
    row_codes: QuantizedRows,
    /// int8 copy of `means`.
    mean_codes: QuantizedRows,
}

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
}

impl ExactIndex {
    /// An empty index scoring identities with `fusion`.
    pub fn new(fusion: Fusion) -> Self {
        Self { fusion, ..Self::default() }
    }

    /// The fusion in use.
    pub fn fusion(&self) -> Fusion {
        self.fusion
    }

    /// Switches between best-of and mean scoring (both are always kept up to date).
    pub fn set_fusion(&mut self, fusion: Fusion) {
        self.fusion = fusion;
    }

    /// Number of stored embeddings (rows), over all identities.
    pub fn embedding_count(&self) -> usize {
        self.row_slots.len()
    }

    /// Reserves room for `identities` identities with `embeddings` embeddings in total.
    pub fn reserve(&mut self, identities: usize, embeddings: usize) {
        self.identities.reserve(identities);
        self.slots.reserve(identities);
        self.means.reserve(identities * EMBEDDING_DIM);
        self.rows.reserve(embeddings * EMBEDDING_DIM);
        self.row_codes.reserve(embeddings);
        self.mean_codes.reserve(identities);
        self.row_slots.reserve(embeddings);
    }

    /// Bytes held by the embeddings (f32 rows, int8 rows, row owners, f32 and int8 means)
    /// and the identity strings, without allocator slack or the hash map's own table.
    pub fn heap_bytes(&self) -> usize {
        let floats = (self.rows.len() + self.means.len()) * size_of::<f32>();
        let codes = self.row_codes.heap_bytes() + self.mean_codes.heap_bytes();
        let names: usize = self.identities.iter().map(String::len).sum();
        floats + codes + self.row_slots.len() * size_of::<u32>() + 2 * names
    }

    /// The search by comparing the probe with every row in f32: the reference the two-pass
    /// [`FaceIndex::search`] must equal, and what it is benchmarked against.
    pub fn search_exhaustive(&self, probe: &Embedding) -> SearchResult {
        let (rows, owner) = self.rows_for_fusion();
        self.rescore(probe.as_slice(), rows, 0..rows.len() / EMBEDDING_DIM, owner)
    }

    fn rows_for_fusion(&self) -> (&[f32], impl Fn(usize) -> u32 + '_) {
        let rows = match self.fusion {
            Fusion::BestOf => &self.rows,
            Fusion::Mean => &self.means,
        };
        let fusion = self.fusion;
        (rows, move |i: usize| match fusion {
            Fusion::BestOf => self.row_slots[i],
            Fusion::Mean => i as u32,
        })
    }

    /// The exact f32 scan over the given rows, in the order given.
    fn rescore(
        &self,
        probe: &[f32],
        rows: &[f32],
        candidates: impl IntoIterator<Item = usize>,
        owner: impl Fn(usize) -> u32,
    ) -> SearchResult {
        let mut top = TopTwo::new(f32::NEG_INFINITY);
        for i in candidates {
            top.offer(owner(i), dot(probe, &rows[i * EMBEDDING_DIM..(i + 1) * EMBEDDING_DIM]));
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
        self.means.extend_from_slice(template.mean().as_slice());
        self.mean_codes.push(template.mean().as_slice());
        for e in template.embeddings() {
            self.rows.extend_from_slice(e.as_slice());
            self.row_codes.push(e.as_slice());
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
            }
            self.row_slots[write] = if owner > slot { owner - 1 } else { owner };
            write += 1;
        }
        self.row_slots.truncate(write);
        self.rows.truncate(write * EMBEDDING_DIM);
        self.row_codes.truncate(write);
        let s = slot as usize;
        self.identities.remove(s);
        self.means.drain(s * EMBEDDING_DIM..(s + 1) * EMBEDDING_DIM);
        self.mean_codes.remove_row(s);
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

    /// Two passes: the int8 rows pick the candidates, f32 re-scores them (see
    /// `QuantizedRows::candidates` for why the result is [`ExactIndex::search_exhaustive`]'s).
    fn search(&self, probe: &Embedding) -> SearchResult {
        let codes = match self.fusion {
            Fusion::BestOf => &self.row_codes,
            Fusion::Mean => &self.mean_codes,
        };
        let (rows, owner) = self.rows_for_fusion();
        let candidates = codes.candidates(&QuantizedProbe::new(probe.as_slice()), &owner);
        self.rescore(probe.as_slice(), rows, candidates, owner)
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
        let mut index = ExactIndex::new(Fusion::BestOf);
        let people: Vec<Embedding> = (0..50).map(synthetic).collect();
        for (i, p) in people.iter().enumerate() {
            let t = Template::new(vec![near(p, 1000 + i as u64, 0.3), near(p, 2000 + i as u64, 0.3)]).unwrap();
            index.upsert(&format!("user-{i}"), &t);
        }
        assert_eq!(index.len(), 50);
        assert_eq!(index.embedding_count(), 100);
        for fusion in [Fusion::BestOf, Fusion::Mean] {
            index.set_fusion(fusion);
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
                .map(|i| {
                    let rows = index.rows.chunks_exact(EMBEDDING_DIM).zip(&index.row_slots);
                    match fusion {
                        Fusion::BestOf => rows
                            .filter(|(_, s)| index.identities[**s as usize] == format!("user-{i}"))
                            .map(|(r, _)| dot(probe.as_slice(), r))
                            .fold(f32::NEG_INFINITY, f32::max),
                        Fusion::Mean => {
                            let slot = index.slots[&format!("user-{i}")] as usize;
                            dot(probe.as_slice(), &index.means[slot * EMBEDDING_DIM..(slot + 1) * EMBEDDING_DIM])
                        }
                    }
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
        assert_eq!(index.embedding_count(), 4);
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
    fn gallery(seed: u64, people: usize) -> (ExactIndex, Vec<Embedding>) {
        let mut index = ExactIndex::new(Fusion::BestOf);
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

    fn assert_same_as_exhaustive(index: &mut ExactIndex, probes: &[Embedding]) {
        for fusion in [Fusion::BestOf, Fusion::Mean] {
            index.set_fusion(fusion);
            for (k, probe) in probes.iter().enumerate() {
                assert_eq!(index.search(probe), index.search_exhaustive(probe), "probe {k}, {fusion:?}");
            }
        }
    }

    #[test]
    fn two_pass_search_equals_the_exhaustive_scan() {
        let (mut index, faces) = gallery(1, 20_000);
        assert_same_as_exhaustive(&mut index, &probes(&faces, 500, 400));
        // Replace some identities (one by a copy of another: exact ties), remove others.
        index.set_fusion(Fusion::BestOf);
        for i in (0..20_000).step_by(97) {
            let face = if i % 2 == 0 { faces[i + 1].clone() } else { synthetic(900_000 + i as u64) };
            index.upsert(&format!("user-{i}"), &Template::new(vec![face.clone(), near(&face, 3, 0.05)]).unwrap());
        }
        for i in (5..20_000).step_by(89) {
            assert!(index.remove(&format!("user-{i}")));
        }
        assert_same_as_exhaustive(&mut index, &probes(&faces, 700, 400));
    }

    #[test]
    fn two_pass_search_equals_the_exhaustive_scan_at_200k() {
        let (mut index, faces) = gallery(2, 200_000);
        assert_same_as_exhaustive(&mut index, &probes(&faces, 900, 40));
    }

    #[test]
    fn two_pass_search_on_tiny_galleries() {
        let mut index = ExactIndex::new(Fusion::BestOf);
        let a = synthetic(11);
        assert_eq!(index.search(&a), SearchResult::default());
        index.upsert("a", &Template::new(vec![a.clone(), near(&a, 1, 0.3)]).unwrap());
        assert_same_as_exhaustive(&mut index, &[a.clone(), synthetic(12)]);
        index.upsert("b", &Template::new(vec![a.clone()]).unwrap());
        assert_same_as_exhaustive(&mut index, &[a.clone(), synthetic(12)]);
    }

    /// The comparison can fail: a search that drops the best row differs from the reference.
    #[test]
    fn the_reference_scan_notices_a_missed_row() {
        let (index, faces) = gallery(3, 1_000);
        let probe = faces[500].clone();
        let (rows, owner) = index.rows_for_fusion();
        let best_row = (0..index.embedding_count())
            .max_by(|&i, &j| {
                let score = |r: usize| dot(probe.as_slice(), &rows[r * EMBEDDING_DIM..(r + 1) * EMBEDDING_DIM]);
                score(i).total_cmp(&score(j))
            })
            .unwrap();
        let missing =
            index.rescore(probe.as_slice(), rows, (0..index.embedding_count()).filter(|&r| r != best_row), owner);
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
