//! `MpiGroup`: the ranks of an `mpirun` job, over the system's MPI library (rsmpi).
//!
//! MPI is initialised with `MPI_THREAD_MULTIPLE` when the library offers it (OpenMPI and MPICH
//! do), at least `MPI_THREAD_SERIALIZED`: data-parallel training calls collectives from its
//! communication thread while the main thread computes, and a mutex keeps the calls one at a
//! time, which is what `SERIALIZED` asks.
//!
//! No rank may wait forever, whatever the others do:
//! - a rank that dies is seen by `mpirun`, which ends the job and names the rank;
//! - a rank that panics aborts the job (a panic hook calls `MPI_Abort` after the usual message,
//!   prefixed with the rank), and so does any MPI error (MPI's default error handler);
//! - a collective that waits longer than [`MpiOptions::timeout`] for the others (a rank stuck,
//!   or calling a different collective) makes a watchdog print what was waited for, by which
//!   rank, and abort the job.

use super::{check_pair, check_root, Data, DataMut, ProcessGroup, ReduceOp};
use crate::{Error, Result};
use mpi::collective::SystemOperation;
use mpi::datatype::PartitionMut;
use mpi::environment::Universe;
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;
use mpi::{Count, Threading};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Exit code of a job aborted because a collective timed out.
pub const EXIT_TIMEOUT: i32 = 3;
/// Exit code of a job aborted because a rank panicked.
pub const EXIT_PANIC: i32 = 101;

/// How an [`MpiGroup`] is set up.
#[derive(Clone, Debug, PartialEq)]
pub struct MpiOptions {
    /// How long one collective may wait for the other ranks before the job is aborted
    /// (default 10 minutes, NCCL's default: long enough for a slow first step or a large
    /// checkpoint written by rank 0 while the others wait).
    pub timeout: Duration,
}

impl Default for MpiOptions {
    fn default() -> Self {
        MpiOptions { timeout: Duration::from_secs(600) }
    }
}

impl MpiOptions {
    /// Sets [`timeout`](Self::timeout).
    pub fn timeout(mut self, timeout: Duration) -> MpiOptions {
        self.timeout = timeout;
        self
    }
}

/// This process's rank of the `mpirun` job (`MPI_COMM_WORLD`). Create one per process, with
/// [`MpiGroup::init`]; MPI is finalised when the last handle drops.
///
/// Run as `mpirun --bind-to none -np 2 PROGRAM` (one machine) or `mpirun --bind-to none
/// --hostfile HOSTS -np 4 PROGRAM` (several). Without `mpirun`, a program is a job of one
/// rank.
pub struct MpiGroup {
    rank: usize,
    size: usize,
    local_size: usize,
    description: String,
    /// Collectives one at a time (`MPI_THREAD_SERIALIZED`).
    calls: Mutex<()>,
    watchdog: Watchdog,
    universe: Mutex<Option<Universe>>,
}

impl std::fmt::Debug for MpiGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.description)
    }
}

impl MpiGroup {
    /// Initialises MPI and returns this process's rank of `MPI_COMM_WORLD`.
    ///
    /// Installs a panic hook that aborts the job after the usual panic message (a rank that
    /// panics would otherwise leave the others waiting in their next collective).
    pub fn init(options: MpiOptions) -> Result<Arc<MpiGroup>> {
        if options.timeout.is_zero() {
            return Err(Error::InvalidArgument {
                what: "MpiOptions",
                reason: "timeout must be positive".into(),
            });
        }
        let (universe, threading) =
            mpi::initialize_with_threading(Threading::Multiple).ok_or_else(|| Error::Mpi {
                reason: "MPI is already initialised in this process (create one MpiGroup per process)".into(),
            })?;
        if threading < Threading::Serialized {
            return Err(Error::Mpi {
                reason: format!(
                    "the MPI library offers thread support {threading:?}; data-parallel training needs \
                     Serialized or Multiple"
                ),
            });
        }
        let world = universe.world();
        let (rank, size) = (world.rank() as usize, world.size() as usize);
        let local_size = world.split_shared(world.rank()).size() as usize;
        let host = mpi::environment::processor_name().unwrap_or_else(|_| "?".into());
        let library = mpi::environment::library_version().unwrap_or_default();
        let library = library.split([',', '\n']).next().unwrap_or("MPI").trim().to_string();
        install_panic_hook(rank, size);
        Ok(Arc::new(MpiGroup {
            rank,
            size,
            local_size,
            description: format!(
                "MPI ({library}): rank {rank} of {size} on {host} ({local_size} on this machine)"
            ),
            calls: Mutex::new(()),
            watchdog: Watchdog::start(rank, size, options.timeout, threading == Threading::Multiple)?,
            universe: Mutex::new(Some(universe)),
        }))
    }

    /// One collective: serialised, watched, on `MPI_COMM_WORLD`.
    fn call<R>(&self, op: &'static str, len: usize, f: impl FnOnce(&SimpleCommunicator) -> R) -> Result<R> {
        if len > Count::MAX as usize {
            return Err(Error::Communication {
                rank: self.rank,
                op,
                reason: format!(
                    "{len} elements exceed MPI's count limit ({}); use smaller buckets",
                    Count::MAX
                ),
            });
        }
        let _one_at_a_time = lock(&self.calls);
        let _watched = self.watchdog.watch(op);
        Ok(f(&SimpleCommunicator::world()))
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn system_op(op: ReduceOp) -> SystemOperation {
    match op {
        ReduceOp::Sum => SystemOperation::sum(),
        ReduceOp::Max => SystemOperation::max(),
        ReduceOp::Min => SystemOperation::min(),
    }
}

impl ProcessGroup for MpiGroup {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.size
    }

    fn local_size(&self) -> usize {
        self.local_size
    }

    fn description(&self) -> String {
        self.description.clone()
    }

    fn all_reduce_into(&self, send: Data<'_>, recv: DataMut<'_>, op: ReduceOp) -> Result<()> {
        check_pair("all_reduce", send, &recv)?;
        self.call("all_reduce", send.len(), |world| match (send, recv) {
            (Data::F32(s), DataMut::F32(r)) => world.all_reduce_into(s, r, system_op(op)),
            (Data::F64(s), DataMut::F64(r)) => world.all_reduce_into(s, r, system_op(op)),
            (Data::U64(s), DataMut::U64(r)) => world.all_reduce_into(s, r, system_op(op)),
            _ => unreachable!("internal invariant: check_pair compared the types"),
        })
    }

    fn broadcast(&self, data: DataMut<'_>, root: usize) -> Result<()> {
        check_root(self, "broadcast", root)?;
        self.call("broadcast", data.len(), |world| {
            let root = world.process_at_rank(root as i32);
            match data {
                DataMut::F32(d) => root.broadcast_into(d),
                DataMut::F64(d) => root.broadcast_into(d),
                DataMut::U64(d) => root.broadcast_into(d),
            }
        })
    }

    fn all_gather_bytes(&self, mine: &[u8]) -> Result<Vec<Vec<u8>>> {
        let mut lens = vec![0u64; self.size];
        self.call("all_gather_bytes", mine.len(), |world| {
            world.all_gather_into(&[mine.len() as u64][..], &mut lens[..])
        })?;
        let total: u64 = lens.iter().sum();
        let counts: Vec<Count> = lens.iter().map(|&l| l as Count).collect();
        let displs: Vec<Count> =
            counts.iter().scan(0, |at, &c| Some(std::mem::replace(at, *at + c))).collect();
        let mut all = vec![0u8; total as usize];
        self.call("all_gather_bytes", total as usize, |world| {
            world.all_gather_varcount_into(
                mine,
                &mut PartitionMut::new(&mut all[..], &counts[..], &displs[..]),
            )
        })?;
        Ok(displs.iter().zip(&counts).map(|(&d, &c)| all[d as usize..(d + c) as usize].to_vec()).collect())
    }

    fn barrier(&self) -> Result<()> {
        self.call("barrier", 0, |world| world.barrier())
    }

    fn abort(&self, code: i32) -> ! {
        SimpleCommunicator::world().abort(code)
    }
}

impl Drop for MpiGroup {
    /// Stops the watchdog and finalises MPI.
    fn drop(&mut self) {
        self.watchdog.stop();
        drop(lock(&self.universe).take());
    }
}

/// After the previous hook's message, a panic on any thread of a rank aborts the job.
fn install_panic_hook(rank: usize, size: usize) {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        previous(info);
        if mpi::is_initialized() && !mpi::is_finalized() {
            eprintln!("graphgrad-distributed: rank {rank} of {size} panicked; aborting the job");
            SimpleCommunicator::world().abort(EXIT_PANIC);
        }
    }));
}

/// Aborts the job when one collective waits longer than the timeout.
struct Watchdog {
    shared: Arc<(Mutex<Watch>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct Watch {
    /// The collective in progress and when it started.
    current: Option<(&'static str, Instant)>,
    stop: bool,
}

/// Clears the watched collective when dropped.
struct Watched<'a>(&'a Watchdog);

impl Drop for Watched<'_> {
    fn drop(&mut self) {
        lock(&self.0.shared.0).current = None;
    }
}

impl Watchdog {
    /// The watchdog looks at the collective in progress every tenth of the timeout (at most
    /// every second), so starting a collective costs one uncontended lock and no wake-up.
    fn start(rank: usize, size: usize, timeout: Duration, can_abort: bool) -> Result<Watchdog> {
        let shared = Arc::new((Mutex::new(Watch::default()), Condvar::new()));
        let watch = shared.clone();
        let tick = (timeout / 10).clamp(Duration::from_millis(10), Duration::from_secs(1));
        let thread = std::thread::Builder::new()
            .name("graphgrad-mpi-watchdog".into())
            .spawn(move || {
                let (state, wake) = &*watch;
                let mut w = lock(state);
                while !w.stop {
                    if let Some((op, started)) = w.current {
                        if started.elapsed() >= timeout {
                            eprintln!(
                                "graphgrad-distributed: rank {rank} of {size}: {op} has waited {:.1} s for the other \
                                 ranks (timeout {:.1} s): a rank has stopped, is stuck, or called a different \
                                 collective; aborting the job",
                                started.elapsed().as_secs_f64(),
                                timeout.as_secs_f64()
                            );
                            if can_abort {
                                SimpleCommunicator::world().abort(EXIT_TIMEOUT);
                            }
                            // Without MPI_THREAD_MULTIPLE this thread may not call MPI: a rank
                            // that exits unfinalised makes mpirun end the job.
                            std::process::exit(EXIT_TIMEOUT);
                        }
                    }
                    w = wake.wait_timeout(w, tick).unwrap_or_else(|e| e.into_inner()).0;
                }
            })
            .map_err(|e| Error::Mpi { reason: format!("cannot start the watchdog thread: {e}") })?;
        Ok(Watchdog { shared, thread: Some(thread) })
    }

    fn watch(&self, op: &'static str) -> Watched<'_> {
        lock(&self.shared.0).current = Some((op, Instant::now()));
        Watched(self)
    }

    fn stop(&mut self) {
        lock(&self.shared.0).stop = true;
        self.shared.1.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
