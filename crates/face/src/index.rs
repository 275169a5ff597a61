//! 1:N search over enrolled templates.
//!
//! [`FaceIndex`] is the seam for an approximate index later; [`ExactIndex`] compares the
//! probe with every enrolled embedding. Embeddings live in one contiguous `Vec<f32>`
//! (a row of [`EMBEDDING_DIM`] floats each), so a search is a straight pass over memory
//! that the compiler vectorises.

use std::collections::HashMap;

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
        self.row_slots.reserve(embeddings);
    }

    fn scan(&self, probe: &[f32], rows: &[f32], owner: impl Fn(usize) -> u32) -> SearchResult {
        // Best and second-best *identity*: an identity's score is the max over its rows.
        let (mut best, mut second): ((u32, f32), (u32, f32)) =
            ((u32::MAX, f32::NEG_INFINITY), (u32::MAX, f32::NEG_INFINITY));
        for (i, row) in rows.chunks_exact(EMBEDDING_DIM).enumerate() {
            let s = dot(probe, row);
            let o = owner(i);
            if o == best.0 {
                best.1 = best.1.max(s);
            } else if s > best.1 {
                second = best;
                best = (o, s);
            } else if o == second.0 {
                second.1 = second.1.max(s);
            } else if s > second.1 {
                second = (o, s);
            }
        }
        let hit = |(slot, similarity): (u32, f32)| {
            (slot != u32::MAX).then(|| SearchHit { identity: self.identities[slot as usize].clone(), similarity })
        };
        SearchResult { best: hit(best), second: hit(second) }
    }
}

impl FaceIndex for ExactIndex {
    fn upsert(&mut self, identity: &str, template: &Template) {
        self.remove(identity);
        let slot = self.identities.len() as u32;
        self.identities.push(identity.to_string());
        self.slots.insert(identity.to_string(), slot);
        self.means.extend_from_slice(template.mean().as_slice());
        for e in template.embeddings() {
            self.rows.extend_from_slice(e.as_slice());
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
            }
            self.row_slots[write] = if owner > slot { owner - 1 } else { owner };
            write += 1;
        }
        self.row_slots.truncate(write);
        self.rows.truncate(write * EMBEDDING_DIM);
        let s = slot as usize;
        self.identities.remove(s);
        self.means.drain(s * EMBEDDING_DIM..(s + 1) * EMBEDDING_DIM);
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

    fn search(&self, probe: &Embedding) -> SearchResult {
        match self.fusion {
            Fusion::BestOf => self.scan(probe.as_slice(), &self.rows, |i| self.row_slots[i]),
            Fusion::Mean => self.scan(probe.as_slice(), &self.means, |i| i as u32),
        }
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
