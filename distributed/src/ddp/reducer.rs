//! The reducer: fills gradient buckets as gradients become final and hands each full bucket,
//! in bucket order, to a communication thread that averages it over the ranks while the
//! backward pass goes on.
//!
//! Invariants: buckets are launched strictly in index order (bucket `k` only after `0..k`), so
//! every rank issues the same all-reduces in the same order whatever order its gradients
//! became final in; a step's results are written back only after every bucket has returned;
//! the communication thread is the only one that talks to the group while a step is in
//! flight.

use super::buckets::Bucket;
use crate::group::{Data, DataMut, ProcessGroup, ReduceOp};
use crate::{Error, Result};
use graphgrad_autodiff::{DType, Elem, Tensor, Var};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

/// A bucket's flat buffer.
#[derive(Debug)]
enum Flat {
    F32(Vec<f32>),
    F64(Vec<f64>),
}

impl Flat {
    fn zeros(dtype: DType, len: usize) -> Flat {
        match dtype {
            DType::F32 => Flat::F32(vec![0.0; len]),
            DType::F64 => Flat::F64(vec![0.0; len]),
        }
    }

    fn data(&self) -> Data<'_> {
        match self {
            Flat::F32(v) => Data::F32(v),
            Flat::F64(v) => Data::F64(v),
        }
    }

    fn data_mut(&mut self) -> DataMut<'_> {
        match self {
            Flat::F32(v) => DataMut::F32(v),
            Flat::F64(v) => DataMut::F64(v),
        }
    }

    /// Copies `grad` (or zeros) into `[offset, offset + numel)`.
    fn write(&mut self, offset: usize, numel: usize, grad: Option<&Tensor>) -> Result<()> {
        fn put<T: Elem>(dst: &mut [T], grad: Option<&Tensor>) -> Result<()> {
            match grad {
                None => dst.fill(T::ZERO),
                Some(g) => {
                    let value = g.read();
                    let src = T::slice(&value).ok_or_else(|| Error::InvalidArgument {
                        what: "DistributedDataParallel",
                        reason: format!("a gradient of type {} for a parameter of another type", g.dtype()),
                    })?;
                    dst.copy_from_slice(src);
                }
            }
            Ok(())
        }
        match self {
            Flat::F32(v) => put(&mut v[offset..offset + numel], grad),
            Flat::F64(v) => put(&mut v[offset..offset + numel], grad),
        }
    }

    /// `[offset, offset + numel)` as a new tensor of `shape`.
    fn tensor(&self, offset: usize, numel: usize, shape: &[usize]) -> Result<Tensor> {
        Ok(match self {
            Flat::F32(v) => Tensor::from_slice(&v[offset..offset + numel], shape)?,
            Flat::F64(v) => Tensor::from_slice(&v[offset..offset + numel], shape)?,
        })
    }

    /// Divides every element by `n` (the sum over ranks becomes the mean).
    fn divide(&mut self, n: usize) {
        match self {
            Flat::F32(v) => v.iter_mut().for_each(|x| *x /= n as f32),
            Flat::F64(v) => v.iter_mut().for_each(|x| *x /= n as f64),
        }
    }
}

/// One bucket's all-reduce, handed to the communication thread and back.
struct Job {
    bucket: usize,
    send: Flat,
    recv: Flat,
}

struct Done {
    job: Job,
    result: Result<()>,
    finished: Instant,
}

/// When each bucket of the last step was launched and came back, relative to the first
/// gradient that became final (seconds), and when backward ended: the overlap of
/// communication with computation, measured.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Timeline {
    /// Seconds from the first final gradient to the end of the backward pass (`None` when
    /// the step's gradients were handed over at once, as in a compiled step).
    pub backward_end: Option<f64>,
    /// `(bytes, launched, returned)` per bucket, in bucket order.
    pub buckets: Vec<(usize, f64, f64)>,
    /// Seconds until every averaged gradient was written back.
    pub end: f64,
}

/// Where a step stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// No synchronised forward since the last reduction: backward passes accumulate locally.
    Local,
    /// A forward ran with synchronisation on: the next backward averages its gradients.
    Armed,
    /// The gradients of this forward have been averaged; another backward would double them.
    Reduced,
}

struct Slot {
    flat: Option<Flat>,
    spare: Option<Flat>,
    ready: Vec<bool>,
    pending: usize,
    launched_at: Option<Instant>,
    returned_at: Option<Instant>,
}

/// The bucketed gradient averager of one model on one rank (see the module docs).
pub(crate) struct Reducer {
    params: Vec<(String, Var)>,
    layout: Vec<Bucket>,
    /// Tensor id of each parameter → (bucket, position in the bucket).
    slot_of: std::collections::HashMap<usize, (usize, usize)>,
    slots: Vec<Slot>,
    next_launch: usize,
    in_flight: usize,
    pub(crate) phase: Phase,
    pub(crate) overlap: bool,
    rank: usize,
    started: Option<Instant>,
    backward_end: Option<Instant>,
    timeline: Timeline,
    to_comm: Option<Sender<Job>>,
    from_comm: Receiver<Done>,
    thread: Option<JoinHandle<()>>,
}

impl Reducer {
    pub(crate) fn new(
        params: Vec<(String, Var)>,
        layout: Vec<Bucket>,
        group: Arc<dyn ProcessGroup>,
        overlap: bool,
    ) -> Result<Reducer> {
        let mut slot_of = std::collections::HashMap::new();
        for (b, bucket) in layout.iter().enumerate() {
            for (pos, &p) in bucket.params.iter().enumerate() {
                slot_of.insert(params[p].1.id(), (b, pos));
            }
        }
        let slots = layout
            .iter()
            .map(|b| Slot {
                flat: Some(Flat::zeros(b.dtype, b.len)),
                spare: Some(Flat::zeros(b.dtype, b.len)),
                ready: vec![false; b.params.len()],
                pending: b.params.len(),
                launched_at: None,
                returned_at: None,
            })
            .collect();
        let (to_comm, jobs) = channel::<Job>();
        let (done, from_comm) = channel::<Done>();
        let (rank, size) = (group.rank(), group.size());
        let thread = std::thread::Builder::new()
            .name(format!("graphgrad-ddp-comm-{rank}"))
            .spawn(move || {
                // FIFO: the jobs arrive, and are reduced, in bucket order.
                for mut job in jobs {
                    let result = group.all_reduce_into(job.send.data(), job.recv.data_mut(), ReduceOp::Sum);
                    if result.is_ok() {
                        job.recv.divide(size);
                    }
                    if done.send(Done { job, result, finished: Instant::now() }).is_err() {
                        return;
                    }
                }
            })
            .map_err(|e| Error::Communication {
                rank,
                op: "DistributedDataParallel",
                reason: format!("cannot start the communication thread: {e}"),
            })?;
        Ok(Reducer {
            params,
            layout,
            slot_of,
            slots,
            next_launch: 0,
            in_flight: 0,
            phase: Phase::Local,
            overlap,
            rank,
            started: None,
            backward_end: None,
            timeline: Timeline::default(),
            to_comm: Some(to_comm),
            from_comm,
            thread: Some(thread),
        })
    }

    /// The last completed step's timeline.
    pub(crate) fn timeline(&self) -> &Timeline {
        &self.timeline
    }

    /// A leaf's gradient became final during backward.
    pub(crate) fn grad_ready(&mut self, leaf: &Tensor) -> Result<()> {
        let Some(&(b, pos)) = self.slot_of.get(&leaf.id()) else { return Ok(()) };
        match self.phase {
            Phase::Local => return Ok(()),
            Phase::Reduced => {
                return Err(Error::InvalidArgument {
                    what: "DistributedDataParallel",
                    reason: format!(
                        "a second backward after one forward ({} got another gradient after the step's \
                         gradients were averaged): run forward again, or wrap the earlier passes in no_sync",
                        self.params[self.layout[b].params[pos]].0
                    ),
                })
            }
            Phase::Armed => {}
        }
        self.started.get_or_insert_with(Instant::now);
        let mut result = self.fill(b, pos, leaf.grad().as_ref());
        if result.is_ok() && self.overlap {
            result = self.launch_full();
        }
        if result.is_err() {
            // The step cannot complete: wait for what is in flight and start afresh.
            self.reset(false);
        }
        result
    }

    /// The backward pass ended: finish the step if it reported any of our gradients.
    pub(crate) fn backward_finished(&mut self) -> Result<()> {
        if self.phase != Phase::Armed || self.started.is_none() {
            return Ok(());
        }
        self.backward_end = Some(Instant::now());
        self.complete()
    }

    /// Averages the given gradients (one per parameter, in `named_parameters` order) and
    /// stores the results as the parameters' `.grad()`.
    pub(crate) fn average(&mut self, grads: &[Option<Tensor>]) -> Result<()> {
        if self.started.is_some() {
            return Err(Error::InvalidArgument {
                what: "DistributedDataParallel::average_gradients",
                reason: "called while a backward pass is being averaged".into(),
            });
        }
        self.started = Some(Instant::now());
        self.backward_end = None;
        let mut first_error = None;
        for b in 0..self.layout.len() {
            for pos in 0..self.layout[b].params.len() {
                let p = self.layout[b].params[pos];
                if let Err(e) = self.fill(b, pos, grads[p].as_ref()) {
                    first_error.get_or_insert(e);
                }
            }
            // Launch each bucket as soon as it is filled: the next one is copied meanwhile.
            if let Err(e) = self.launch_full() {
                self.reset(false);
                return Err(e);
            }
        }
        let result = self.complete();
        first_error.map_or(result, Err)
    }

    /// Copies one gradient into its bucket. On error the bucket still counts the gradient
    /// (as zeros), so this rank goes on issuing the same all-reduces as the others.
    fn fill(&mut self, b: usize, pos: usize, grad: Option<&Tensor>) -> Result<()> {
        let bucket = &self.layout[b];
        let slot = &mut self.slots[b];
        let p = bucket.params[pos];
        if slot.ready[pos] {
            return Err(Error::InvalidArgument {
                what: "DistributedDataParallel",
                reason: format!(
                    "the gradient of {} became final twice in one step (call backward once per forward, \
                     or wrap the earlier passes in no_sync)",
                    self.params[p].0
                ),
            });
        }
        let numel = self.params[p].1.numel();
        let flat = slot.flat.as_mut().expect("internal invariant: an unlaunched bucket holds its buffer");
        let written = flat.write(bucket.offsets[pos], numel, grad);
        if written.is_err() {
            flat.write(bucket.offsets[pos], numel, None)?;
        }
        slot.ready[pos] = true;
        slot.pending -= 1;
        written
    }

    /// Launches, in order, every bucket whose gradients are all final.
    fn launch_full(&mut self) -> Result<()> {
        while self.next_launch < self.slots.len() && self.slots[self.next_launch].pending == 0 {
            let b = self.next_launch;
            let slot = &mut self.slots[b];
            let job = Job {
                bucket: b,
                send: slot.flat.take().expect("internal invariant: launched once"),
                recv: slot.spare.take().expect("internal invariant: launched once"),
            };
            slot.launched_at = Some(Instant::now());
            self.to_comm
                .as_ref()
                .and_then(|c| c.send(job).ok())
                .ok_or_else(|| comm_gone(self.rank, "launch"))?;
            self.next_launch += 1;
            self.in_flight += 1;
        }
        Ok(())
    }

    /// Fills what backward did not reach (the accumulated gradient, or zeros), launches the
    /// remaining buckets, waits for all of them and writes the averages back.
    fn complete(&mut self) -> Result<()> {
        let result = self.complete_inner();
        // Whatever happened, the next step starts from empty buckets.
        self.reset(result.is_ok());
        result
    }

    fn complete_inner(&mut self) -> Result<()> {
        let mut failure = None;
        for b in self.next_launch..self.layout.len() {
            for pos in 0..self.layout[b].params.len() {
                if !self.slots[b].ready[pos] {
                    let grad = self.params[self.layout[b].params[pos]].1.grad();
                    if let Err(e) = self.fill(b, pos, grad.as_ref()) {
                        failure.get_or_insert(e);
                    }
                }
            }
        }
        self.launch_full()?;
        if let Err(e) = self.drain() {
            failure.get_or_insert(e);
        }
        if let Some(e) = failure {
            return Err(e);
        }
        for (b, bucket) in self.layout.iter().enumerate() {
            let flat = self.slots[b].flat.as_ref().expect("internal invariant: every bucket returned");
            for (&p, &offset) in bucket.params.iter().zip(&bucket.offsets) {
                let var = &self.params[p].1;
                var.set_grad(Some(&flat.tensor(offset, var.numel(), var.shape())?))?;
            }
        }
        Ok(())
    }

    /// Waits for every bucket in flight and takes its buffers back; the first failed
    /// all-reduce is the error.
    fn drain(&mut self) -> Result<()> {
        let mut failure = None;
        while self.in_flight > 0 {
            let done = self.from_comm.recv().map_err(|_| comm_gone(self.rank, "wait"))?;
            self.in_flight -= 1;
            let slot = &mut self.slots[done.job.bucket];
            slot.returned_at = Some(done.finished);
            if let Err(e) = done.result {
                failure.get_or_insert(e);
            }
            slot.flat = Some(done.job.recv);
            slot.spare = Some(done.job.send);
        }
        failure.map_or(Ok(()), Err)
    }

    fn reset(&mut self, succeeded: bool) {
        // (After a failure, buckets may still be in flight: their buffers come back first.)
        let _ = self.drain();
        let started = self.started.take().unwrap_or_else(Instant::now);
        let since = |t: Option<Instant>| t.map_or(0.0, |t| t.duration_since(started).as_secs_f64());
        if succeeded {
            self.timeline = Timeline {
                backward_end: self.backward_end.map(|t| since(Some(t))),
                buckets: self
                    .layout
                    .iter()
                    .zip(&self.slots)
                    .map(|(b, s)| (b.len * b.dtype.size(), since(s.launched_at), since(s.returned_at)))
                    .collect(),
                end: since(Some(Instant::now())),
            };
        }
        for (slot, bucket) in self.slots.iter_mut().zip(&self.layout) {
            slot.ready.fill(false);
            slot.pending = bucket.params.len();
            slot.launched_at = None;
            slot.returned_at = None;
            // (A failed step may have lost buffers in flight: make fresh ones.)
            slot.flat.get_or_insert_with(|| Flat::zeros(bucket.dtype, bucket.len));
            slot.spare.get_or_insert_with(|| Flat::zeros(bucket.dtype, bucket.len));
        }
        self.next_launch = 0;
        self.in_flight = 0;
        self.backward_end = None;
        self.phase = match (succeeded, self.phase) {
            (true, Phase::Armed) => Phase::Reduced,
            (true, phase) => phase,
            (false, _) => Phase::Local,
        };
    }

    /// The bucket layout, in launch order.
    pub(crate) fn layout(&self) -> &[Bucket] {
        &self.layout
    }

    /// The number of parameters.
    pub(crate) fn param_count(&self) -> usize {
        self.params.len()
    }
}

fn comm_gone(rank: usize, when: &str) -> Error {
    Error::Communication {
        rank,
        op: "DistributedDataParallel",
        reason: format!("the communication thread has stopped ({when})"),
    }
}

impl Drop for Reducer {
    fn drop(&mut self) {
        // Closing the channel ends the thread once the jobs in flight are done.
        drop(self.to_comm.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
