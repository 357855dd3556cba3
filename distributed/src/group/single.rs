//! `SingleProcess`: a group of one rank, in which every collective is the identity.

use super::{check_pair, check_root, Data, DataMut, ProcessGroup, ReduceOp};
use crate::Result;

/// One process alone: rank 0 of 1. All-reduce copies, broadcast and barrier return at once.
///
/// The same data-parallel program runs with it unchanged, without MPI (and then equals
/// ordinary single-process training).
///
/// ```
/// use graphgrad_distributed::{DataMut, ProcessGroup, ReduceOp, SingleProcess};
/// let group = SingleProcess;
/// let mut x = [1.0f32, 2.0];
/// group.all_reduce(DataMut::F32(&mut x), ReduceOp::Sum)?;
/// assert_eq!((group.rank(), group.size(), x), (0, 1, [1.0, 2.0]));
/// # Ok::<(), graphgrad_distributed::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct SingleProcess;

impl ProcessGroup for SingleProcess {
    fn rank(&self) -> usize {
        0
    }

    fn size(&self) -> usize {
        1
    }

    fn local_size(&self) -> usize {
        1
    }

    fn description(&self) -> String {
        "single process (no communication)".to_string()
    }

    fn all_reduce_into(&self, send: Data<'_>, mut recv: DataMut<'_>, _op: ReduceOp) -> Result<()> {
        check_pair("all_reduce", send, &recv)?;
        recv.copy_from(send)
    }

    fn broadcast(&self, _data: DataMut<'_>, root: usize) -> Result<()> {
        check_root(self, "broadcast", root)
    }

    fn all_gather_bytes(&self, mine: &[u8]) -> Result<Vec<Vec<u8>>> {
        Ok(vec![mine.to_vec()])
    }

    fn barrier(&self) -> Result<()> {
        Ok(())
    }

    fn abort(&self, code: i32) -> ! {
        std::process::exit(code)
    }
}
