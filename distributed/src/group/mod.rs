//! Process groups: the ranks of one job and the collective operations between them.
//!
//! A [`ProcessGroup`] is what data-parallel training needs from a communication library:
//! this process's rank and the group's size, all-reduce, broadcast, all-gather of byte
//! strings, a barrier, and a way to end the whole job. Every rank must call the same
//! collectives in the same order with the same lengths (MPI's rule); data-parallel training
//! keeps to it by deriving every call from state that is checked to be equal on every rank.
//!
//! Implementations:
//! - [`SingleProcess`]: one rank, every collective the identity. Always built, so the same
//!   training program runs without MPI.
//! - [`ThreadGroup`]: ranks as threads of one process, exchanging through shared memory. For
//!   tests and for trying a data-parallel program without MPI; not a transport between
//!   machines.
//! - `MpiGroup` (feature `mpi`): the ranks of an `mpirun` job, over the system's MPI library,
//!   within a machine (shared memory) or across machines (TCP, InfiniBand...).

mod single;
mod threads;

#[cfg(feature = "mpi")]
mod mpi;

pub use single::SingleProcess;
pub use threads::ThreadGroup;

#[cfg(feature = "mpi")]
pub use self::mpi::{MpiGroup, MpiOptions};

use crate::{Error, Result};

/// How an all-reduce combines the ranks' values, element by element.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReduceOp {
    /// The sum over ranks.
    Sum,
    /// The largest value.
    Max,
    /// The smallest value.
    Min,
}

/// Elements sent by a collective (the same type and length on every rank).
#[derive(Clone, Copy, Debug)]
pub enum Data<'a> {
    /// 32-bit floats.
    F32(&'a [f32]),
    /// 64-bit floats.
    F64(&'a [f64]),
    /// Unsigned 64-bit integers (lengths, counters, flags).
    U64(&'a [u64]),
}

/// Elements received (or sent and overwritten) by a collective.
#[derive(Debug)]
pub enum DataMut<'a> {
    /// 32-bit floats.
    F32(&'a mut [f32]),
    /// 64-bit floats.
    F64(&'a mut [f64]),
    /// Unsigned 64-bit integers.
    U64(&'a mut [u64]),
}

impl Data<'_> {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            Data::F32(d) => d.len(),
            Data::F64(d) => d.len(),
            Data::U64(d) => d.len(),
        }
    }

    /// True when there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The element type's name, for messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Data::F32(_) => "f32",
            Data::F64(_) => "f64",
            Data::U64(_) => "u64",
        }
    }
}

impl DataMut<'_> {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.as_data().len()
    }

    /// True when there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A read-only view of the same elements.
    pub fn as_data(&self) -> Data<'_> {
        match self {
            DataMut::F32(d) => Data::F32(d),
            DataMut::F64(d) => Data::F64(d),
            DataMut::U64(d) => Data::U64(d),
        }
    }

    /// Copies `src` (same type and length) into these elements.
    pub fn copy_from(&mut self, src: Data<'_>) -> Result<()> {
        check_pair("copy_from", src, self)?;
        match (self, src) {
            (DataMut::F32(d), Data::F32(s)) => d.copy_from_slice(s),
            (DataMut::F64(d), Data::F64(s)) => d.copy_from_slice(s),
            (DataMut::U64(d), Data::U64(s)) => d.copy_from_slice(s),
            _ => unreachable!("internal invariant: check_pair compared the types"),
        }
        Ok(())
    }
}

/// The send and receive buffers of an all-reduce must agree in type and length.
pub(crate) fn check_pair(what: &'static str, send: Data<'_>, recv: &DataMut<'_>) -> Result<()> {
    let recv = recv.as_data();
    if send.type_name() != recv.type_name() || send.len() != recv.len() {
        return Err(Error::InvalidArgument {
            what,
            reason: format!(
                "send buffer has {} {} elements but receive buffer has {} {}",
                send.len(),
                send.type_name(),
                recv.len(),
                recv.type_name()
            ),
        });
    }
    Ok(())
}

/// The ranks of one job and the collective operations between them (see the module docs).
///
/// Every method that communicates is collective: each rank of the group must call it, in the
/// same order, with the same element type and length (and the same root).
pub trait ProcessGroup: Send + Sync {
    /// This process's rank, `0..size()`.
    fn rank(&self) -> usize;

    /// The number of ranks.
    fn size(&self) -> usize;

    /// A one-line description (`MPI (Open MPI v4.1.4): rank 0 of 2 on host a`).
    fn description(&self) -> String;

    /// How many ranks of the group run on this machine (they share its cores).
    fn local_size(&self) -> usize;

    /// Reduces `send` over the ranks with `op` into `recv` (same type and length), on every
    /// rank.
    fn all_reduce_into(&self, send: Data<'_>, recv: DataMut<'_>, op: ReduceOp) -> Result<()>;

    /// Replaces `data` on every rank with the root's.
    fn broadcast(&self, data: DataMut<'_>, root: usize) -> Result<()>;

    /// Every rank's byte string (of any length), in rank order, on every rank.
    fn all_gather_bytes(&self, mine: &[u8]) -> Result<Vec<Vec<u8>>>;

    /// Waits until every rank has called it.
    fn barrier(&self) -> Result<()>;

    /// Ends the whole job, every rank, with exit code `code`: an MPI job is aborted, a thread
    /// group is poisoned and this thread panics, a single process exits.
    fn abort(&self, code: i32) -> !;

    /// [`all_reduce_into`](Self::all_reduce_into) in place.
    fn all_reduce(&self, mut data: DataMut<'_>, op: ReduceOp) -> Result<()> {
        let send: Scratch = Scratch::copy(data.as_data());
        self.all_reduce_into(send.as_data(), data.reborrow(), op)
    }

    /// Replaces `data` (of any length) on every rank with the root's bytes.
    fn broadcast_bytes(&self, data: &mut Vec<u8>, root: usize) -> Result<()> {
        let mut len = [data.len() as u64];
        self.broadcast(DataMut::U64(&mut len), root)?;
        // Bytes travel as u64 words: every implementation then needs only three element types.
        let mut words = vec![0u64; (len[0] as usize).div_ceil(8)];
        if self.rank() == root {
            for (word, chunk) in words.iter_mut().zip(data.chunks(8)) {
                let mut bytes = [0u8; 8];
                bytes[..chunk.len()].copy_from_slice(chunk);
                *word = u64::from_le_bytes(bytes);
            }
        }
        self.broadcast(DataMut::U64(&mut words), root)?;
        data.clear();
        data.extend(words.iter().flat_map(|w| w.to_le_bytes()));
        data.truncate(len[0] as usize);
        Ok(())
    }
}

impl<'a> DataMut<'a> {
    /// The same elements, borrowed again for a shorter time.
    pub fn reborrow(&mut self) -> DataMut<'_> {
        match self {
            DataMut::F32(d) => DataMut::F32(d),
            DataMut::F64(d) => DataMut::F64(d),
            DataMut::U64(d) => DataMut::U64(d),
        }
    }
}

/// An owned copy of some elements (the send side of an in-place all-reduce).
enum Scratch {
    F32(Vec<f32>),
    F64(Vec<f64>),
    U64(Vec<u64>),
}

impl Scratch {
    fn copy(data: Data<'_>) -> Scratch {
        match data {
            Data::F32(d) => Scratch::F32(d.to_vec()),
            Data::F64(d) => Scratch::F64(d.to_vec()),
            Data::U64(d) => Scratch::U64(d.to_vec()),
        }
    }

    fn as_data(&self) -> Data<'_> {
        match self {
            Scratch::F32(d) => Data::F32(d),
            Scratch::F64(d) => Data::F64(d),
            Scratch::U64(d) => Data::U64(d),
        }
    }
}

/// A root outside the group is an error naming both.
pub(crate) fn check_root(group: &dyn ProcessGroup, op: &'static str, root: usize) -> Result<()> {
    if root >= group.size() {
        return Err(Error::InvalidArgument {
            what: op,
            reason: format!("root {root} is not a rank of a group of {}", group.size()),
        });
    }
    Ok(())
}
