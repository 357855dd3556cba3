//! `DistributedSampler`: each rank's share of every epoch, and per-rank random seeds.
//!
//! Every rank draws the same seeded shuffle of the epoch (from the seed and the epoch number
//! only, so nothing needs saving to resume at an epoch boundary) and cuts it into global
//! batches of `batch_size × ranks` samples; each global batch is split into contiguous,
//! near-equal parts, one per rank. So within an epoch the ranks' shards are disjoint and
//! together hold every sample exactly once, and every rank takes the same number of steps
//! (a rank with fewer steps would leave the others waiting in an all-reduce). A last global
//! batch smaller than the number of ranks joins the one before it, so no rank ever gets an
//! empty batch.
//!
//! When a global batch of `m` samples is split unevenly, the mean over ranks of the ranks'
//! mean losses is not the mean over the `m` samples; multiplying each rank's mean loss by
//! [`RankBatch::loss_weight`] (`its samples × ranks / m`, exactly 1 for even splits) makes the
//! averaged gradient that of the global batch's mean loss.

use crate::group::ProcessGroup;
use crate::{Error, Result};
use graphgrad_nn::data::shuffled_indices;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// A seed for stream `stream` of rank `rank` derived from `seed` (SplitMix64 mixing): distinct
/// ranks and streams get unrelated seeds, and the same arguments always the same seed. For
/// per-rank dropout masks, seed each rank's dropout with `rank_seed(seed, rank, epoch)`.
pub fn rank_seed(seed: u64, rank: usize, stream: u64) -> u64 {
    fn mix(mut z: u64) -> u64 {
        z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    mix(mix(mix(seed) ^ rank as u64) ^ stream)
}

/// One rank's batch of one step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RankBatch {
    /// This rank's sample indices (into the data set), in shuffle order.
    pub indices: Vec<usize>,
    /// Samples in the step's global batch (all ranks together).
    pub global_len: usize,
    /// Ranks sharing the step.
    pub ranks: usize,
}

impl RankBatch {
    /// The factor for this rank's mean loss that makes the average over ranks the global
    /// batch's mean loss: `len × ranks / global_len` (see the module docs).
    pub fn loss_weight(&self) -> f64 {
        (self.indices.len() * self.ranks) as f64 / self.global_len as f64
    }
}

/// Each rank's share of every epoch (see the module docs).
///
/// ```
/// use graphgrad_distributed::DistributedSampler;
/// // 10 samples, 2 ranks, batch 2 per rank: global batches of 4, 4 and 2
/// let r0 = DistributedSampler::new(10, 2, 0, 2)?.seed(7);
/// let r1 = DistributedSampler::new(10, 2, 1, 2)?.seed(7);
/// let (b0, b1) = (r0.batches(3)?, r1.batches(3)?);
/// assert_eq!((b0.len(), b1.len()), (3, 3)); // the same number of steps
/// let mut all: Vec<usize> = b0.iter().chain(&b1).flat_map(|b| b.indices.clone()).collect();
/// all.sort();
/// assert_eq!(all, (0..10).collect::<Vec<_>>()); // every sample once
/// # Ok::<(), graphgrad_distributed::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DistributedSampler {
    len: usize,
    batch_size: usize,
    rank: usize,
    ranks: usize,
    seed: u64,
    shuffle: bool,
    drop_last: bool,
}

impl DistributedSampler {
    /// Shares `len` samples among `ranks` ranks, `batch_size` per rank and step, for `rank`.
    /// Shuffled with seed 0, keeping the last, smaller global batch.
    pub fn new(len: usize, batch_size: usize, rank: usize, ranks: usize) -> Result<DistributedSampler> {
        let bad = |reason: String| Err(Error::InvalidArgument { what: "DistributedSampler", reason });
        if ranks == 0 || rank >= ranks {
            return bad(format!("rank {rank} is not a rank of a group of {ranks}"));
        }
        if batch_size == 0 {
            return bad("batch size must be positive".into());
        }
        if len < ranks {
            return bad(format!("{len} samples cannot give each of {ranks} ranks a batch"));
        }
        Ok(DistributedSampler { len, batch_size, rank, ranks, seed: 0, shuffle: true, drop_last: false })
    }

    /// [`new`](Self::new) for this process's rank of `group`.
    pub fn for_group(len: usize, batch_size: usize, group: &dyn ProcessGroup) -> Result<DistributedSampler> {
        DistributedSampler::new(len, batch_size, group.rank(), group.size())
    }

    /// Sets the shuffle seed (the same on every rank).
    pub fn seed(mut self, seed: u64) -> DistributedSampler {
        self.seed = seed;
        self
    }

    /// Shuffles each epoch (default) or keeps data-set order.
    pub fn shuffle(mut self, shuffle: bool) -> DistributedSampler {
        self.shuffle = shuffle;
        self
    }

    /// Drops the last global batch when it is smaller than `batch_size × ranks`.
    pub fn drop_last(mut self, drop_last: bool) -> DistributedSampler {
        self.drop_last = drop_last;
        self
    }

    /// Samples per step over all ranks.
    pub fn global_batch_size(&self) -> usize {
        self.batch_size * self.ranks
    }

    /// Steps in every epoch (the same on every rank).
    pub fn steps_per_epoch(&self) -> usize {
        let global = self.global_batch_size();
        let (full, rest) = (self.len / global, self.len % global);
        match (self.drop_last, rest) {
            (_, 0) | (true, _) => full,
            // a remainder smaller than the ranks joins the last full batch
            (false, r) if r < self.ranks && full > 0 => full,
            (false, _) => full + 1,
        }
    }

    /// The epoch's order of all samples, the same on every rank.
    pub fn epoch_order(&self, epoch: u64) -> Vec<usize> {
        if self.shuffle {
            shuffled_indices(self.len, &mut ChaCha8Rng::seed_from_u64(rank_seed(self.seed, 0, epoch)))
        } else {
            (0..self.len).collect()
        }
    }

    /// The epoch's global batches, as ranges of [`epoch_order`](Self::epoch_order).
    fn global_batches(&self) -> Vec<std::ops::Range<usize>> {
        let global = self.global_batch_size();
        let steps = self.steps_per_epoch();
        (0..steps)
            .map(|s| {
                let end = if s + 1 == steps && !self.drop_last { self.len } else { (s + 1) * global };
                s * global..end.min(self.len)
            })
            .collect()
    }

    /// This rank's batches of `epoch`, one per step.
    pub fn batches(&self, epoch: u64) -> Result<Vec<RankBatch>> {
        self.batches_of(&self.epoch_order(epoch))
    }

    /// This rank's batches of an epoch whose order of all samples is `order` (the same on
    /// every rank, e.g. drawn from a random stream every rank holds in the same state).
    pub fn batches_of(&self, order: &[usize]) -> Result<Vec<RankBatch>> {
        if order.len() != self.len {
            return Err(Error::InvalidArgument {
                what: "DistributedSampler",
                reason: format!("an order of {} samples for a sampler over {}", order.len(), self.len),
            });
        }
        if self.steps_per_epoch() == 0 {
            return Err(Error::InvalidArgument {
                what: "DistributedSampler",
                reason: format!(
                    "{} samples make no global batch of {} with drop_last",
                    self.len,
                    self.global_batch_size()
                ),
            });
        }
        Ok(self
            .global_batches()
            .into_iter()
            .map(|range| {
                let m = range.len();
                // contiguous parts [r·m/R, (r+1)·m/R): sizes differ by at most one
                let (lo, hi) = (
                    range.start + self.rank * m / self.ranks,
                    range.start + (self.rank + 1) * m / self.ranks,
                );
                RankBatch { indices: order[lo..hi].to_vec(), global_len: m, ranks: self.ranks }
            })
            .collect())
    }

    /// This rank's samples of `epoch` (its batches, concatenated).
    pub fn shard(&self, epoch: u64) -> Result<Vec<usize>> {
        Ok(self.batches(epoch)?.into_iter().flat_map(|b| b.indices).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_ranks(len: usize, batch: usize, ranks: usize, drop_last: bool, epoch: u64) -> Vec<Vec<RankBatch>> {
        (0..ranks)
            .map(|r| DistributedSampler::new(len, batch, r, ranks).unwrap().seed(3).drop_last(drop_last))
            .map(|s| s.batches(epoch).unwrap())
            .collect()
    }

    #[test]
    fn shards_are_disjoint_complete_and_equally_long() {
        for (len, batch, ranks) in
            [(10, 2, 2), (11, 2, 2), (9, 4, 2), (1797, 32, 3), (5, 1, 5), (13, 3, 4), (7, 100, 2)]
        {
            for epoch in 0..3 {
                let per_rank = all_ranks(len, batch, ranks, false, epoch);
                let steps = per_rank[0].len();
                let mut seen: Vec<usize> = Vec::new();
                for batches in &per_rank {
                    assert_eq!(batches.len(), steps, "len {len} batch {batch} ranks {ranks}");
                    for b in batches {
                        assert!(
                            !b.indices.is_empty(),
                            "an empty batch: len {len} batch {batch} ranks {ranks}"
                        );
                        seen.extend(&b.indices);
                    }
                }
                seen.sort();
                assert_eq!(seen, (0..len).collect::<Vec<_>>(), "len {len} batch {batch} ranks {ranks}");
                // the loss weights of one step average to 1 over the ranks
                for s in 0..steps {
                    let total: f64 = per_rank.iter().map(|b| b[s].loss_weight()).sum();
                    assert!((total / ranks as f64 - 1.0).abs() < 1e-12);
                }
            }
        }
    }

    #[test]
    fn epochs_reshuffle_the_same_way_on_every_rank() {
        let s = DistributedSampler::new(100, 5, 1, 4).unwrap().seed(9);
        assert_eq!(s.epoch_order(0), s.clone().seed(9).epoch_order(0));
        assert_ne!(s.epoch_order(0), s.epoch_order(1));
        let mut order = s.epoch_order(4);
        order.sort();
        assert_eq!(order, (0..100).collect::<Vec<_>>());
        // rank 1 of 4 with batch 5: the second fifth of each global batch of 20
        let first = &s.batches(4).unwrap()[0];
        assert_eq!(first.indices, s.epoch_order(4)[5..10]);
        assert_eq!(DistributedSampler::new(4, 2, 0, 2).unwrap().shuffle(false).shard(0).unwrap(), [0, 1]);
    }

    #[test]
    fn remainders_join_or_drop_and_bad_settings_are_errors() {
        // 11 samples, 2 ranks × 5: the remainder of 1 (< 2 ranks) joins the batch before: 1 step of 11
        let per_rank = all_ranks(11, 5, 2, false, 0);
        assert_eq!(per_rank[0].len(), 1);
        assert_eq!((per_rank[0][0].indices.len(), per_rank[1][0].indices.len()), (5, 6));
        assert_eq!(per_rank[1][0].loss_weight(), 12.0 / 11.0);
        // drop_last: 9 samples, 2 × 2: two full steps, sample count 8
        let dropped = all_ranks(9, 2, 2, true, 0);
        assert_eq!(dropped[0].len(), 2);
        assert_eq!(dropped.iter().flatten().map(|b| b.indices.len()).sum::<usize>(), 8);
        let bad = |r: Result<DistributedSampler>| r.unwrap_err().to_string();
        assert!(bad(DistributedSampler::new(10, 2, 2, 2)).contains("rank 2 is not a rank of a group of 2"));
        assert!(bad(DistributedSampler::new(10, 0, 0, 2)).contains("batch size"));
        assert!(bad(DistributedSampler::new(1, 2, 0, 2)).contains("1 samples cannot give each of 2 ranks"));
        let err = DistributedSampler::new(3, 2, 0, 2).unwrap().drop_last(true).batches(0).unwrap_err();
        assert!(err.to_string().contains("no global batch of 4"), "{err}");
    }

    #[test]
    fn rank_seeds_differ_by_rank_and_stream_and_repeat() {
        let seeds: Vec<u64> = (0..4).flat_map(|r| (0..4).map(move |e| rank_seed(1, r, e))).collect();
        let mut unique = seeds.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 16);
        assert_eq!(rank_seed(1, 2, 3), rank_seed(1, 2, 3));
        assert_ne!(rank_seed(1, 0, 0), rank_seed(2, 0, 0));
    }
}
