//! Checkpoints in a data-parallel job: rank 0 writes, every rank reads rank 0's file.
//!
//! Every replica holds the same parameters and optimiser state, so one copy is enough: rank 0
//! builds and saves the [`Checkpoint`] while the others wait, and then every rank learns
//! whether the save worked (an error on rank 0 is an error on every rank, naming rank 0).
//! Loading is the mirror image: rank 0 reads and checks the file and broadcasts its bytes, so
//! only rank 0's machine needs the file. With a sampler and dropout seeds derived from the
//! epoch ([`DistributedSampler`](crate::DistributedSampler), [`rank_seed`](crate::rank_seed)),
//! a run resumed at an epoch boundary continues bit-identically on every rank.

use crate::group::ProcessGroup;
use crate::{Error, Result};
use graphgrad_optim::Checkpoint;
use std::path::Path;

/// One status byte (0 = ok, 1 = failed) then the payload or the error message.
fn encode(result: std::result::Result<Vec<u8>, String>) -> Vec<u8> {
    match result {
        Ok(mut bytes) => {
            bytes.insert(0, 0);
            bytes
        }
        Err(message) => {
            let mut bytes = vec![1];
            bytes.extend(message.into_bytes());
            bytes
        }
    }
}

fn decode(mut bytes: Vec<u8>) -> Result<Vec<u8>> {
    match bytes.first() {
        Some(0) => {
            bytes.remove(0);
            Ok(bytes)
        }
        _ => Err(Error::RankFailed {
            rank: 0,
            reason: String::from_utf8_lossy(bytes.get(1..).unwrap_or(&[])).into(),
        }),
    }
}

/// Collective: rank 0 builds the checkpoint with `build` and saves it atomically at `path`
/// (the other ranks neither build nor write anything); every rank returns once the file is
/// written, with rank 0's error if it failed.
pub fn save_checkpoint(
    group: &dyn ProcessGroup,
    path: impl AsRef<Path>,
    build: impl FnOnce() -> Checkpoint,
) -> Result<()> {
    let mut status = if group.rank() == 0 {
        let path = path.as_ref();
        encode(build().save(path).map(|()| Vec::new()).map_err(|e| format!("saving {}: {e}", path.display())))
    } else {
        Vec::new()
    };
    group.broadcast_bytes(&mut status, 0)?;
    decode(status).map(drop)
}

/// Collective: rank 0 reads and validates the checkpoint at `path` and sends it to every
/// rank; every rank returns the same checkpoint, or rank 0's error.
pub fn load_checkpoint(group: &dyn ProcessGroup, path: impl AsRef<Path>) -> Result<Checkpoint> {
    let mut bytes = if group.rank() == 0 {
        let path = path.as_ref();
        encode(
            Checkpoint::load(path)
                .and_then(|c| c.to_bytes())
                .map_err(|e| format!("loading {}: {e}", path.display())),
        )
    } else {
        Vec::new()
    };
    group.broadcast_bytes(&mut bytes, 0)?;
    Ok(Checkpoint::from_bytes(&decode(bytes)?)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ThreadGroup;
    use graphgrad_autodiff::{DType, Tensor, Var};

    #[test]
    fn rank_zero_writes_every_rank_reads_and_failures_reach_every_rank() {
        let dir = std::env::temp_dir().join(format!("gg-dist-ckpt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.ggck");
        let built = std::sync::atomic::AtomicUsize::new(0);
        let loaded = ThreadGroup::run(3, |g| -> Result<Vec<f32>> {
            let w = Var::new("w", &Tensor::full(&[2], g.rank() as f64 + 1.0, DType::F32)?);
            let model = vec![("w".to_string(), w.clone())];
            save_checkpoint(&g, &path, || {
                built.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Checkpoint::new(&model).with_progress(4, 40)
            })?;
            let c = load_checkpoint(&g, &path)?;
            assert_eq!((c.epoch, c.step), (4, 40));
            c.restore_model(&model)?;
            Ok(w.to_vec::<f32>()?)
        })
        .unwrap();
        // only rank 0 built it, and every rank now holds rank 0's values
        assert_eq!(built.into_inner(), 1);
        assert_eq!(loaded, vec![vec![1.0, 1.0]; 3]);
        // rank 0 cannot read a missing file: every rank gets rank 0's error
        let missing = dir.join("missing.ggck");
        let errors = ThreadGroup::run(2, |g| -> Result<String> {
            Ok(load_checkpoint(&g, &missing).map(|_| String::new()).unwrap_err().to_string())
        })
        .unwrap();
        for e in errors {
            assert!(e.starts_with("rank 0 failed: loading") && e.contains("missing.ggck"), "{e}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
