//! Atomic saving under `kill -9`: a child process (this test binary re-executed with
//! `GRAPHGRAD_ATOMIC_CHILD` set) saves a large checkpoint in a loop; the parent kills it at
//! random moments (until at least three kills have landed between creating the temporary
//! file and renaming it). After every kill the checkpoint at the destination must load, whole and
//! self-consistent (every element equals the iteration recorded in its metadata), and never
//! go backwards.

use graphgrad_autodiff::{DType, StateDict, Tensor};
use graphgrad_optim::{write_atomic, Checkpoint};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const CHILD_ENV: &str = "GRAPHGRAD_ATOMIC_CHILD";
/// 2^21 f32 = 8 MiB per checkpoint: long enough to be caught mid-write.
const ELEMENTS: usize = 1 << 21;

fn checkpoint(iteration: u64) -> Checkpoint {
    let mut state = StateDict::new();
    state.insert("big".into(), Tensor::full(&[ELEMENTS], iteration as f64, DType::F32).unwrap());
    Checkpoint::from_state_dict(&state)
        .with_progress(iteration, iteration)
        .with_metadata("iteration", iteration.to_string())
}

/// The child's loop (a no-op when run as an ordinary test): save iteration 1, 2, 3, ... to
/// the path in `GRAPHGRAD_ATOMIC_CHILD` until killed.
#[test]
fn child_saves_in_a_loop() {
    let Ok(path) = std::env::var(CHILD_ENV) else { return };
    let start: u64 = std::env::var("GRAPHGRAD_ATOMIC_START").unwrap().parse().unwrap();
    for iteration in start.. {
        // `save` is `to_bytes` then `write_atomic`; writing each encoding three times spends
        // more of the loop inside the file operations, where the kills are meant to land.
        let bytes = checkpoint(iteration).to_bytes().unwrap();
        for _ in 0..3 {
            write_atomic(Path::new(&path), &bytes).unwrap();
        }
    }
}

fn temp_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().contains(".tmp-"))
        .collect()
}

#[test]
fn a_process_killed_mid_save_leaves_the_previous_checkpoint_intact() {
    let dir = std::env::temp_dir().join(format!("graphgrad-optim-atomic-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("run.ckpt");
    checkpoint(0).save(&path).unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(2024);
    let (mut last, mut killed_mid_write, mut advanced) = (0u64, 0, 0);
    // At least 20 rounds, and on until 3 kills have landed mid-write (at most 150 rounds).
    let mut rounds = 0;
    for round in 0..150 {
        if round >= 20 && killed_mid_write >= 3 {
            break;
        }
        rounds += 1;
        let mut child = Command::new(&exe)
            .args(["--exact", "child_saves_in_a_loop", "--nocapture", "--test-threads", "1"])
            .env(CHILD_ENV, &path)
            .env("GRAPHGRAD_ATOMIC_START", (last + 1).to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(rng.gen_range(30..400)));
        child.kill().unwrap(); // SIGKILL: no destructor, no flush, no cleanup
        child.wait().unwrap();

        let leftovers = temp_files(&dir);
        if !leftovers.is_empty() {
            killed_mid_write += 1;
        }
        for f in leftovers {
            std::fs::remove_file(f).unwrap();
        }
        let ckpt = Checkpoint::load(&path)
            .unwrap_or_else(|e| panic!("round {round}: the previous checkpoint no longer loads: {e}"));
        let iteration = ckpt.epoch;
        assert_eq!(ckpt.metadata["iteration"], iteration.to_string());
        let values = ckpt.model_state().unwrap()["big"].to_vec::<f32>().unwrap();
        assert_eq!(values.len(), ELEMENTS);
        assert!(values.iter().all(|&v| v == iteration as f32), "round {round}: mixed contents");
        assert!(iteration >= last, "round {round}: went back from {last} to {iteration}");
        if iteration > last {
            advanced += 1;
        }
        last = iteration;
    }
    println!("{rounds} kills: {killed_mid_write} landed mid-write, {advanced} rounds saved at least once, last iteration {last}");
    assert!(killed_mid_write > 0, "no kill landed during a write; the test proved nothing");
    assert!(advanced > 0, "the child never completed a save");
    std::fs::remove_dir_all(&dir).unwrap();
}
