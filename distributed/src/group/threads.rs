//! `ThreadGroup`: ranks as threads of one process, for tests and for trying a data-parallel
//! program without MPI.
//!
//! Each collective is a rendezvous: every rank deposits its contribution in a shared slot;
//! the last to arrive publishes all of them and wakes the others; each rank then computes the
//! result from the same contributions in rank order, so every rank gets bit-identical values.
//! A rank that leaves (its `ThreadGroup` dropped: the thread returned or panicked) or does not
//! arrive within the timeout breaks the group: every rank waiting or arriving later gets an
//! error that names the rank, never a hang.

use super::{check_pair, check_root, Data, DataMut, ProcessGroup, ReduceOp};
use crate::{Error, Result};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// One rank of a group of threads (see the module docs).
///
/// ```
/// use graphgrad_distributed::{DataMut, ProcessGroup, ReduceOp, ThreadGroup};
/// let sums = ThreadGroup::run(3, |group| {
///     let mut x = [group.rank() as f64 + 1.0];
///     group.all_reduce(DataMut::F64(&mut x), ReduceOp::Sum).map(|()| x[0])
/// })?;
/// assert_eq!(sums, [6.0, 6.0, 6.0]); // 1 + 2 + 3 on every rank
/// # Ok::<(), graphgrad_distributed::Error>(())
/// ```
#[derive(Debug)]
pub struct ThreadGroup {
    rank: usize,
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    size: usize,
    timeout: Duration,
    state: Mutex<State>,
    arrived: Condvar,
}

#[derive(Debug)]
struct State {
    /// Collectives completed so far.
    generation: u64,
    /// This round's contributions, by rank.
    slots: Vec<Option<Contribution>>,
    /// The last completed round's contributions, by rank.
    published: Arc<Vec<Contribution>>,
    /// Why the group can no longer communicate.
    broken: Option<String>,
}

#[derive(Clone, Debug)]
struct Contribution {
    op: &'static str,
    root: usize,
    payload: Payload,
}

#[derive(Clone, Debug, PartialEq)]
enum Payload {
    F32(Vec<f32>),
    F64(Vec<f64>),
    U64(Vec<u64>),
    Bytes(Vec<u8>),
    Nothing,
}

impl Payload {
    fn of(data: Data<'_>) -> Payload {
        match data {
            Data::F32(d) => Payload::F32(d.to_vec()),
            Data::F64(d) => Payload::F64(d.to_vec()),
            Data::U64(d) => Payload::U64(d.to_vec()),
        }
    }

    /// Type and length, for checking that the ranks agree.
    fn kind(&self) -> (&'static str, usize) {
        match self {
            Payload::F32(d) => ("f32", d.len()),
            Payload::F64(d) => ("f64", d.len()),
            Payload::U64(d) => ("u64", d.len()),
            Payload::Bytes(_) => ("bytes", 0),
            Payload::Nothing => ("nothing", 0),
        }
    }
}

/// The default time a rank waits for the others before the group is declared broken.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

impl ThreadGroup {
    /// The `size` ranks of a new group, one per thread to run (rank order).
    pub fn new(size: usize) -> Result<Vec<ThreadGroup>> {
        ThreadGroup::with_timeout(size, DEFAULT_TIMEOUT)
    }

    /// [`new`](Self::new) with the time a collective waits for the other ranks.
    pub fn with_timeout(size: usize, timeout: Duration) -> Result<Vec<ThreadGroup>> {
        if size == 0 {
            return Err(Error::InvalidArgument {
                what: "ThreadGroup",
                reason: "a group needs at least one rank".into(),
            });
        }
        let shared = Arc::new(Shared {
            size,
            timeout,
            state: Mutex::new(State {
                generation: 0,
                slots: vec![None; size],
                published: Arc::new(Vec::new()),
                broken: None,
            }),
            arrived: Condvar::new(),
        });
        Ok((0..size).map(|rank| ThreadGroup { rank, shared: shared.clone() }).collect())
    }

    /// Runs `f` on `size` threads, each with its rank of a new group, and returns their
    /// results in rank order; the first rank that fails (an error, or a panic reported as one)
    /// is the error.
    pub fn run<T, E>(size: usize, f: impl Fn(ThreadGroup) -> Result<T, E> + Sync) -> Result<Vec<T>>
    where
        T: Send,
        E: std::fmt::Display + Send,
    {
        let groups = ThreadGroup::new(size)?;
        let outcomes: Vec<std::thread::Result<Result<T, E>>> = std::thread::scope(|scope| {
            let handles: Vec<_> = groups.into_iter().map(|g| scope.spawn(|| f(g))).collect();
            handles.into_iter().map(|h| h.join()).collect()
        });
        outcomes
            .into_iter()
            .enumerate()
            .map(|(rank, outcome)| match outcome {
                Ok(Ok(value)) => Ok(value),
                Ok(Err(e)) => Err(Error::RankFailed { rank, reason: e.to_string() }),
                Err(panic) => {
                    Err(Error::RankFailed { rank, reason: format!("panicked: {}", panic_message(&panic)) })
                }
            })
            .collect()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.shared.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Deposits this rank's contribution and returns every rank's, once all have arrived.
    fn exchange(&self, op: &'static str, root: usize, payload: Payload) -> Result<Arc<Vec<Contribution>>> {
        let fail = |reason: String| Error::Communication { rank: self.rank, op, reason };
        let mut state = self.lock();
        if let Some(reason) = &state.broken {
            return Err(fail(reason.clone()));
        }
        let generation = state.generation;
        state.slots[self.rank] = Some(Contribution { op, root, payload });
        if state.slots.iter().all(Option::is_some) {
            let all = state.slots.iter_mut().map(|s| s.take().expect("checked above")).collect();
            state.published = Arc::new(all);
            state.generation += 1;
            self.shared.arrived.notify_all();
        } else {
            let deadline = Instant::now() + self.shared.timeout;
            while state.generation == generation {
                if let Some(reason) = &state.broken {
                    return Err(fail(reason.clone()));
                }
                let now = Instant::now();
                if now >= deadline {
                    let missing: Vec<usize> =
                        (0..self.shared.size).filter(|&r| state.slots[r].is_none()).collect();
                    let reason = format!(
                        "waited {:?} for rank(s) {missing:?}, which never joined (stopped, stuck or in another collective)",
                        self.shared.timeout
                    );
                    state.broken = Some(format!("rank {} gave up on {op}: {reason}", self.rank));
                    self.shared.arrived.notify_all();
                    return Err(fail(reason));
                }
                state = self
                    .shared
                    .arrived
                    .wait_timeout(state, deadline - now)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
        }
        let all = state.published.clone();
        drop(state);
        // Every rank sees the same contributions, so every rank reaches the same verdict.
        let first = &all[0];
        for (rank, c) in all.iter().enumerate() {
            let same_kind = op == "all_gather_bytes" || c.payload.kind() == first.payload.kind();
            if c.op != first.op || c.root != first.root || !same_kind {
                return Err(fail(format!(
                    "rank {rank} called {} (root {}, {:?}) while rank 0 called {} (root {}, {:?})",
                    c.op,
                    c.root,
                    c.payload.kind(),
                    first.op,
                    first.root,
                    first.payload.kind()
                )));
            }
        }
        Ok(all)
    }
}

impl Drop for ThreadGroup {
    /// A rank that leaves breaks the group for the others (they would wait for it forever).
    fn drop(&mut self) {
        let mut state = self.lock();
        if state.broken.is_none() {
            let how = if std::thread::panicking() { "panicked" } else { "left the group" };
            state.broken = Some(format!("rank {} {how}", self.rank));
        }
        self.shared.arrived.notify_all();
    }
}

fn reduce<T: Copy>(parts: impl Iterator<Item = Vec<T>>, out: &mut [T], f: impl Fn(T, T) -> T) {
    for (i, part) in parts.enumerate() {
        if i == 0 {
            out.copy_from_slice(&part);
        } else {
            out.iter_mut().zip(part).for_each(|(o, p)| *o = f(*o, p));
        }
    }
}

fn combine<T: Copy + PartialOrd + std::ops::Add<Output = T>>(op: ReduceOp) -> impl Fn(T, T) -> T {
    move |a, b| match op {
        ReduceOp::Sum => a + b,
        ReduceOp::Max if b > a => b,
        ReduceOp::Min if b < a => b,
        ReduceOp::Max | ReduceOp::Min => a,
    }
}

impl ProcessGroup for ThreadGroup {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.shared.size
    }

    fn local_size(&self) -> usize {
        self.shared.size
    }

    fn description(&self) -> String {
        format!("threads: rank {} of {} in one process", self.rank, self.shared.size)
    }

    fn all_reduce_into(&self, send: Data<'_>, recv: DataMut<'_>, op: ReduceOp) -> Result<()> {
        check_pair("all_reduce", send, &recv)?;
        let all = self.exchange("all_reduce", 0, Payload::of(send))?;
        let parts = all.iter().map(|c| c.payload.clone());
        match recv {
            DataMut::F32(out) => reduce(
                parts.map(|p| if let Payload::F32(v) = p { v } else { unreachable!() }),
                out,
                combine(op),
            ),
            DataMut::F64(out) => reduce(
                parts.map(|p| if let Payload::F64(v) = p { v } else { unreachable!() }),
                out,
                combine(op),
            ),
            DataMut::U64(out) => reduce(
                parts.map(|p| if let Payload::U64(v) = p { v } else { unreachable!() }),
                out,
                combine(op),
            ),
        }
        Ok(())
    }

    fn broadcast(&self, mut data: DataMut<'_>, root: usize) -> Result<()> {
        check_root(self, "broadcast", root)?;
        let all = self.exchange("broadcast", root, Payload::of(data.as_data()))?;
        match (&mut data, &all[root].payload) {
            (DataMut::F32(d), Payload::F32(v)) => d.copy_from_slice(v),
            (DataMut::F64(d), Payload::F64(v)) => d.copy_from_slice(v),
            (DataMut::U64(d), Payload::U64(v)) => d.copy_from_slice(v),
            _ => unreachable!("internal invariant: exchange checked that the payloads agree"),
        }
        Ok(())
    }

    fn all_gather_bytes(&self, mine: &[u8]) -> Result<Vec<Vec<u8>>> {
        let all = self.exchange("all_gather_bytes", 0, Payload::Bytes(mine.to_vec()))?;
        Ok(all
            .iter()
            .map(|c| match &c.payload {
                Payload::Bytes(b) => b.clone(),
                _ => unreachable!("internal invariant: exchange checked the op"),
            })
            .collect())
    }

    fn barrier(&self) -> Result<()> {
        self.exchange("barrier", 0, Payload::Nothing).map(drop)
    }

    fn abort(&self, code: i32) -> ! {
        self.lock().broken = Some(format!("rank {} aborted the job with code {code}", self.rank));
        self.shared.arrived.notify_all();
        panic!("rank {} of {} aborted the job with code {code}", self.rank, self.shared.size)
    }
}

/// The message of a panic payload (`&str` or `String`), or a placeholder.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collectives_agree_on_every_rank() -> Result<()> {
        let results = ThreadGroup::run(3, |g| -> Result<_> {
            let r = g.rank();
            // sums 0+1+2 = 3, 10·(0+1+2) = 30; max and min of the ranks
            let mut sum = [r as f32, 10.0 * r as f32];
            g.all_reduce(DataMut::F32(&mut sum), ReduceOp::Sum)?;
            let mut max = [r as u64];
            g.all_reduce(DataMut::U64(&mut max), ReduceOp::Max)?;
            let mut min = [r as f64 - 5.0];
            g.all_reduce(DataMut::F64(&mut min), ReduceOp::Min)?;
            let mut from_root = vec![r as u8; r + 1];
            g.broadcast_bytes(&mut from_root, 2)?;
            let gathered = g.all_gather_bytes(&vec![b'a' + r as u8; r])?;
            g.barrier()?;
            Ok((sum, max[0], min[0], from_root, gathered))
        })?;
        for (sum, max, min, from_root, gathered) in results {
            assert_eq!(sum, [3.0, 30.0]);
            assert_eq!((max, min), (2, -5.0));
            assert_eq!(from_root, vec![2u8, 2, 2]);
            assert_eq!(gathered, vec![vec![], vec![b'b'], vec![b'c', b'c']]);
        }
        Ok(())
    }

    #[test]
    fn a_rank_that_leaves_or_disagrees_is_named_not_waited_for() {
        // rank 1 returns early: rank 0's barrier fails naming it instead of hanging
        let err = ThreadGroup::run(2, |g| if g.rank() == 0 { g.barrier() } else { Ok(()) }).unwrap_err();
        assert!(err.to_string().contains("rank 1 left the group"), "{err}");
        // different lengths in one all-reduce
        let err = ThreadGroup::run(2, |g| {
            let mut x = vec![0.0f32; 1 + g.rank()];
            g.all_reduce(DataMut::F32(&mut x), ReduceOp::Sum)
        })
        .unwrap_err();
        assert!(err.to_string().contains("rank 1 called all_reduce (root 0, (\"f32\", 2))"), "{err}");
        // a rank that never arrives: the timeout names it
        let groups = ThreadGroup::with_timeout(2, Duration::from_millis(50)).unwrap();
        let err = groups[0].barrier().unwrap_err();
        assert!(err.to_string().contains("rank(s) [1], which never joined"), "{err}");
        // a panicking rank is reported as that rank's failure
        let err = ThreadGroup::run(2, |g| -> Result<()> {
            if g.rank() == 1 {
                panic!("boom");
            }
            g.barrier()
        })
        .unwrap_err();
        assert!(err.to_string().contains("rank 1 panicked"), "{err}");
        assert!(ThreadGroup::new(0).is_err());
    }
}
