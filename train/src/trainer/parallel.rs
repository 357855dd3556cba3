//! Data-parallel training: what `fit` does differently on each rank of a process group.
//!
//! Every rank runs the same trainer on the same data set. The epoch's shuffle is drawn from the
//! trainer's random stream, which every rank holds in the same state, and each global batch of
//! `batch size × ranks` samples is cut into one contiguous part per rank (the
//! [`DistributedSampler`]'s rule), so the ranks' shares are disjoint and cover the epoch. Each
//! rank adds its share's gradient, weighted by its size, into `.grad()`; the sums are averaged
//! over the ranks in buckets and scaled to the mean over the global batch before the update, so
//! every replica takes the step one process would take on the whole batch. The epoch's
//! measurements are rank 0's (every rank evaluates the same model on the same data), so every
//! rank stops at the same epoch; only rank 0 prints, logs, plots and writes checkpoints.

use crate::error::{Error, Result};
use graphgrad_autodiff::Var;
use graphgrad_distributed::{
    rank_seed, DataMut, DdpConfig, DistributedSampler, GradientAverager, ProcessGroup, ReduceOp,
};
use graphgrad_nn::Module;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::sync::Arc;

/// One rank's part of a data-parallel run.
pub(crate) struct DataParallel {
    group: Arc<dyn ProcessGroup>,
    averager: GradientAverager,
    sampler: DistributedSampler,
}

impl DataParallel {
    /// Collective: checks that every rank holds the same model and gives every rank rank 0's
    /// values (the trainable parameters averaged, the frozen ones and the buffers only
    /// checked and copied).
    pub(crate) fn new(
        group: Arc<dyn ProcessGroup>,
        trainable: Vec<(String, Var)>,
        fixed: &[(String, Var)],
        samples: usize,
        batch_size: usize,
        drop_last: bool,
    ) -> Result<DataParallel> {
        let averager = GradientAverager::new(group.clone(), trainable, fixed, &DdpConfig::default())
            .map_err(distributed)?;
        let sampler = DistributedSampler::for_group(samples, batch_size, group.as_ref())
            .map_err(distributed)?
            .drop_last(drop_last);
        Ok(DataParallel { group, averager, sampler })
    }

    /// Steps in every epoch, the same on every rank.
    pub(crate) fn steps_per_epoch(&self) -> usize {
        self.sampler.steps_per_epoch()
    }

    /// Ranks in the group.
    pub(crate) fn ranks(&self) -> usize {
        self.group.size()
    }

    /// Whether this is rank 0, the one that reports.
    pub(crate) fn lead(&self) -> bool {
        self.group.rank() == 0
    }

    /// This rank's `(indices, samples in the global batch)` of each step of an epoch whose
    /// order of all samples is `order`.
    pub(crate) fn batches(&self, order: &[usize]) -> Result<Vec<(Vec<usize>, usize)>> {
        let batches = self.sampler.batches_of(order).map_err(distributed)?;
        Ok(batches.into_iter().map(|b| (b.indices, b.global_len)).collect())
    }

    /// Seeds each random stream of `model` (dropout, noise) for this rank and the coming
    /// epoch: from the next number of the trainer's stream (the same on every rank, and
    /// restored by a resume; peeked, so the epoch's shuffle is the one a single process
    /// draws) mixed with the rank, so the ranks draw different masks and a run resumed at an
    /// epoch boundary draws the same ones again.
    pub(crate) fn seed_random_streams(&self, model: &dyn Module, rng: &ChaCha8Rng) -> Result<()> {
        let epoch_seed: u64 = rng.clone().gen();
        let rank = self.group.rank();
        let streams: BTreeMap<String, [i64; 2]> = model
            .random_state()
            .into_keys()
            .enumerate()
            .map(|(i, name)| (name, [rank_seed(epoch_seed, rank, i as u64) as i64, 0]))
            .collect();
        Ok(model.load_random_state(&streams)?)
    }

    /// Collective: every trainable parameter's `.grad()` becomes its mean over the ranks.
    pub(crate) fn average_gradients(&mut self) -> Result<()> {
        self.averager.average().map_err(distributed)
    }

    /// Collective: every rank takes rank 0's buffers (batch-norm statistics), so that the
    /// replicas are equal when evaluated and saved.
    pub(crate) fn share_buffers(&self) -> Result<()> {
        self.averager.broadcast_buffers().map_err(distributed)
    }

    /// Collective: the element-wise sums over the ranks.
    pub(crate) fn sum(&self, values: &mut [f64]) -> Result<()> {
        self.group.all_reduce(DataMut::F64(values), ReduceOp::Sum).map_err(distributed)
    }

    /// Collective: every rank takes rank 0's values (the keys are the same on every rank).
    pub(crate) fn take_lead_values(&self, values: &mut BTreeMap<String, f64>) -> Result<()> {
        let mut flat: Vec<f64> = values.values().copied().collect();
        self.group.broadcast(DataMut::F64(&mut flat), 0).map_err(distributed)?;
        values.values_mut().zip(flat).for_each(|(v, lead)| *v = lead);
        Ok(())
    }

    /// Collective: rank 0's answer, on every rank.
    pub(crate) fn lead_says(&self, yes: bool) -> Result<bool> {
        let mut flag = [if yes { 1.0 } else { 0.0 }];
        self.group.broadcast(DataMut::F64(&mut flag), 0).map_err(distributed)?;
        Ok(flag[0] == 1.0)
    }

    /// Collective: `Ok` on every rank when rank 0's `result` was, and rank 0's error on every
    /// rank otherwise (a checkpoint rank 0 could not write).
    pub(crate) fn lead_result(&self, result: Result<()>) -> Result<()> {
        let mut message = match &result {
            Err(e) if self.lead() => e.to_string().into_bytes(),
            _ => Vec::new(),
        };
        self.group.broadcast_bytes(&mut message, 0).map_err(distributed)?;
        match (result, message.is_empty()) {
            (Err(e), _) => Err(e),
            (Ok(()), true) => Ok(()),
            (Ok(()), false) => Err(distributed(graphgrad_distributed::Error::RankFailed {
                rank: 0,
                reason: String::from_utf8_lossy(&message).into(),
            })),
        }
    }
}

fn distributed(e: graphgrad_distributed::Error) -> Error {
    Error::Distributed(e)
}
