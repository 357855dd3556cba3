//! Data-parallel training over MPI: each test starts `mpirun -np 2` on this test binary, whose
//! ranks run a scenario (selected by `GRAPHGRAD_MPI_SCENARIO`) and write what they computed
//! into a folder that the test then checks against values computed here, in one process.
//!
//! Every `mpirun` runs under a time limit: a test fails, rather than hangs, when a job does
//! not end. Without `mpirun` on the PATH the tests are skipped with a printed reason, unless
//! `GRAPHGRAD_REQUIRE_MPI=1` (as `.ci/run` sets) makes that a failure.
//!
//! ```text
//! cargo test -p graphgrad-distributed --features mpi --test mpi [-- FILTER]
//! ```

mod common;

use common::{train_ddp, train_single, Mode, Opt, RunOptions};
use graphgrad_distributed::{exit_code, DistributedSampler, Error, MpiGroup, MpiOptions, ProcessGroup};
use graphgrad_ops::testing::assert_close;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SCENARIO: &str = "GRAPHGRAD_MPI_SCENARIO";
const OUT: &str = "GRAPHGRAD_MPI_OUT";
const TIMEOUT: &str = "GRAPHGRAD_MPI_TIMEOUT";
const REQUIRE: &str = "GRAPHGRAD_REQUIRE_MPI";
/// The longest any one job of these tests may take.
const JOB_LIMIT: Duration = Duration::from_secs(120);
use common::COMBOS;

// ---- the ranks' side ----

fn write_f32(path: &Path, values: &[f32]) {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(path, bytes).expect("write results");
}

fn read_f32(path: &Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    bytes.chunks(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

/// One rank's part of `scenario`, writing into `out`.
fn scenario(name: &str, group: Arc<dyn ProcessGroup>, out: &Path) -> graphgrad_distributed::Result<()> {
    let rank = group.rank();
    println!("{name}: {}", group.description());
    let file = |stem: &str| out.join(format!("{stem}-rank{rank}"));
    match name {
        "train" => {
            for (opt, mode) in COMBOS {
                let (params, _) = train_ddp(group.clone(), opt, mode, 0..2, RunOptions::default())?;
                write_f32(&file(&format!("{opt:?}-{mode:?}")), &params);
            }
        }
        "sampler" => {
            let sampler = DistributedSampler::for_group(common::SAMPLES, 7, group.as_ref())?.seed(3);
            for epoch in 0..3 {
                let lines: Vec<String> = sampler
                    .batches(epoch)?
                    .iter()
                    .map(|b| b.indices.iter().map(usize::to_string).collect::<Vec<_>>().join(" "))
                    .collect();
                std::fs::write(file(&format!("shard{epoch}")), lines.join("\n")).expect("write shard");
            }
        }
        "full" | "first" | "resume" => {
            let ckpt = out.join("checkpoint.ggck");
            let options = RunOptions {
                dropout: 0.3,
                save: (name == "first").then_some(ckpt.as_path()),
                resume: (name == "resume").then_some(ckpt.as_path()),
                ..Default::default()
            };
            let epochs = match name {
                "full" => 0..2,
                "first" => 0..1,
                _ => 1..2,
            };
            let (params, built) = train_ddp(group, Opt::Adam, Mode::Eager, epochs, options)?;
            write_f32(&file(name), &params);
            std::fs::write(file(&format!("{name}-built")), if built { "yes" } else { "no" }).expect("write");
        }
        "mismatch" | "mismatch-exit" => {
            let hidden = if rank == 1 { 16 } else { common::HIDDEN };
            let config = graphgrad_distributed::DdpConfig::default();
            let result = graphgrad_distributed::DistributedDataParallel::new(
                common::Mlp::new(1, hidden, 0.0),
                group,
                config,
            );
            match (name, result) {
                ("mismatch", Err(e)) => std::fs::write(file("mismatch"), e.to_string()).expect("write"),
                (_, Err(e)) => return Err(e),
                (_, Ok(_)) => std::fs::write(file("mismatch"), "no error").expect("write"),
            }
        }
        failing if failing.starts_with("fail-") => {
            // Rank 1 fails after its first step; rank 0 goes on and would wait for it forever.
            let fail_at_step = std::cell::Cell::new(0);
            let sampler = DistributedSampler::for_group(common::SAMPLES, 64, group.as_ref())?;
            let ddp = graphgrad_distributed::DistributedDataParallel::new(
                common::Mlp::new(1, common::HIDDEN, 0.0),
                group.clone(),
                Default::default(),
            )?;
            let data = common::data();
            for epoch in 0..1000 {
                for b in sampler.batches(epoch)? {
                    if rank == 1 && fail_at_step.replace(fail_at_step.get() + 1) == 1 {
                        match failing {
                            "fail-error" => {
                                return Err(Error::InvalidArgument {
                                    what: "test",
                                    reason: "rank 1 gives up".into(),
                                })
                            }
                            "fail-panic" => panic!("rank 1 panics on purpose"),
                            "fail-killed" => {
                                let _ = Command::new("kill")
                                    .args(["-9", &std::process::id().to_string()])
                                    .status();
                                std::thread::sleep(Duration::from_secs(60));
                            }
                            _ => std::thread::sleep(Duration::from_secs(600)), // "fail-stuck"
                        }
                    }
                    let (x, t) = common::batch(&data, &b.indices, b.loss_weight());
                    common::loss(&graphgrad_nn::Module::forward(&ddp, &x)?, &t)?.backward()?;
                }
            }
        }
        other => panic!("unknown scenario {other}"),
    }
    Ok(())
}

fn rank_main(name: &str) -> ExitCode {
    let timeout = std::env::var(TIMEOUT).ok().and_then(|s| s.parse().ok()).unwrap_or(60.0);
    let group = match MpiGroup::init(MpiOptions::default().timeout(Duration::from_secs_f64(timeout))) {
        Ok(group) => group,
        Err(e) => {
            eprintln!("mpi test rank: {e}");
            return ExitCode::FAILURE;
        }
    };
    let out = PathBuf::from(std::env::var(OUT).expect("the launcher sets the output folder"));
    let result = scenario(name, group.clone(), &out);
    exit_code(group.as_ref(), "mpi test", result)
}

// ---- the launcher's side ----

struct Job {
    status: Option<std::process::ExitStatus>,
    output: String,
    seconds: f64,
}

impl Job {
    fn succeeded(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }
}

/// Runs `scenario` on `np` ranks under `mpirun` with a time limit; a job that outlives it is
/// terminated and reported with `status: None`.
fn launch(scenario: &str, out: &Path, mpirun_args: &[&str], env: &[(&str, &str)], limit: Duration) -> Job {
    std::fs::create_dir_all(out).expect("output folder");
    let log = out.join(format!("{scenario}.log"));
    let log_file = std::fs::File::create(&log).expect("log file");
    let exe = std::env::current_exe().expect("test binary path");
    let mut cmd = Command::new("mpirun");
    cmd.args(["--bind-to", "none", "--oversubscribe", "-np", "2"])
        .args(mpirun_args)
        .arg(exe)
        .env(SCENARIO, scenario)
        .env(OUT, out)
        .env("RAYON_NUM_THREADS", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().expect("log file"))
        .stderr(log_file);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let start = Instant::now();
    let mut child = cmd.spawn().expect("start mpirun");
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for mpirun") {
            break Some(status);
        }
        if start.elapsed() > limit {
            // mpirun passes SIGTERM on to its ranks; SIGKILL if it does not end.
            let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
            std::thread::sleep(Duration::from_secs(5));
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let output = std::fs::read_to_string(&log).unwrap_or_default();
    Job { status, output, seconds: start.elapsed().as_secs_f64() }
}

fn run_ok(scenario: &str, out: &Path, mpirun_args: &[&str]) {
    let job = launch(scenario, out, mpirun_args, &[], JOB_LIMIT);
    assert!(
        job.succeeded(),
        "mpirun {scenario} failed ({:?}, {:.1} s):\n{}",
        job.status,
        job.seconds,
        job.output
    );
}

fn check_training(out: &Path) {
    for (opt, mode) in COMBOS {
        let reference = train_single(opt, mode, 2, 2);
        let r0 = read_f32(&out.join(format!("{opt:?}-{mode:?}-rank0")));
        let r1 = read_f32(&out.join(format!("{opt:?}-{mode:?}-rank1")));
        assert_eq!(r0, r1, "{opt:?} {mode:?}: the replicas differ");
        assert_close(&r0, &reference, 1e-5, 1e-4);
    }
}

/// Two ranks × 64 samples per step = one process × 128, for SGD and Adam, eager and compiled,
/// and SGD with a compiled update.
fn ddp_matches_one_process(out: &Path) {
    run_ok("train", out, &[]);
    check_training(out);
}

/// The same over TCP only (how ranks on different machines talk), not shared memory.
fn tcp_only_transport(out: &Path) {
    run_ok("train", out, &["--mca", "btl", "self,tcp", "--mca", "pml", "ob1"]);
    check_training(out);
}

/// The ranks' shards are disjoint, cover every sample once per epoch, in as many steps.
fn sampler_shards_are_disjoint_and_complete(out: &Path) {
    run_ok("sampler", out, &[]);
    for epoch in 0..3 {
        let read = |rank: usize| -> Vec<Vec<usize>> {
            let text = std::fs::read_to_string(out.join(format!("shard{epoch}-rank{rank}"))).expect("shard");
            text.lines().map(|l| l.split(' ').map(|i| i.parse().expect("index")).collect()).collect()
        };
        let (s0, s1) = (read(0), read(1));
        assert_eq!(s0.len(), s1.len(), "epoch {epoch}: different step counts");
        let mut all: Vec<usize> = s0.iter().chain(&s1).flatten().copied().collect();
        all.sort();
        assert_eq!(
            all,
            (0..common::SAMPLES).collect::<Vec<_>>(),
            "epoch {epoch}: not every sample exactly once"
        );
    }
}

/// Rank 0 alone writes the checkpoint; resuming from it on both ranks (dropout on, with
/// per-rank streams) ends bit-identical to the uninterrupted run.
fn checkpoint_on_rank_zero_and_resume(out: &Path) {
    for stage in ["full", "first", "resume"] {
        run_ok(stage, out, &[]);
    }
    for rank in 0..2 {
        let (full, resumed) = (
            read_f32(&out.join(format!("full-rank{rank}"))),
            read_f32(&out.join(format!("resume-rank{rank}"))),
        );
        assert_eq!(full, resumed, "rank {rank}: the resumed run differs from the uninterrupted one");
        let built = std::fs::read_to_string(out.join(format!("first-built-rank{rank}"))).expect("flag");
        assert_eq!(built, if rank == 0 { "yes" } else { "no" }, "rank {rank} built a checkpoint");
    }
    // the dropout streams differ per rank, so the run was not a copy of one rank
    assert_ne!(read_f32(&out.join("first-rank0")), read_f32(&out.join("full-rank0")));
}

/// Different models: the same clear error on both ranks; through `exit_code` it ends the job.
fn mismatched_models_are_an_error(out: &Path) {
    run_ok("mismatch", out, &[]);
    let m0 = std::fs::read_to_string(out.join("mismatch-rank0")).expect("message");
    let m1 = std::fs::read_to_string(out.join("mismatch-rank1")).expect("message");
    assert_eq!(m0, m1);
    assert!(m0.contains("parameter 0.weight is f32 [16, 20] on rank 1 but f32 [32, 20] on rank 0"), "{m0}");
    let job = launch("mismatch-exit", out, &[], &[], JOB_LIMIT);
    assert!(job.status.is_some_and(|s| !s.success()), "{:?}\n{}", job.status, job.output);
    assert!(job.output.contains("do not hold the same model"), "{}", job.output);
}

/// A rank that returns an error, panics, is killed or gets stuck ends the job with an error
/// that names a rank, within seconds, never a hang.
fn a_failing_rank_ends_the_job(out: &Path) {
    let cases = [
        ("fail-error", "mpi test: rank 1 of 2: test: rank 1 gives up"),
        ("fail-panic", "rank 1 of 2 panicked; aborting the job"),
        ("fail-killed", "rank 1"),
        ("fail-stuck", "rank 0 of 2: all_reduce has waited"),
    ];
    for (scenario, expected) in cases {
        let job = launch(scenario, out, &[], &[(TIMEOUT, "3")], Duration::from_secs(60));
        assert!(job.status.is_some(), "{scenario}: the job did not end within 60 s:\n{}", job.output);
        assert!(!job.succeeded(), "{scenario}: the job succeeded:\n{}", job.output);
        assert!(job.output.contains(expected), "{scenario}: no {expected:?} in:\n{}", job.output);
        println!("  {scenario}: ended in {:.1} s with {:?}", job.seconds, job.status);
    }
}

/// One launcher-side test: it gets its own output folder.
type Test = fn(&Path);

fn mpirun_available() -> Result<String, String> {
    match Command::new("mpirun").arg("--version").output() {
        Ok(o) if o.status.success() => {
            Ok(String::from_utf8_lossy(&o.stdout).lines().next().unwrap_or("").to_string())
        }
        Ok(o) => Err(format!("`mpirun --version` failed: {}", String::from_utf8_lossy(&o.stderr))),
        Err(e) => Err(format!("no mpirun on the PATH ({e})")),
    }
}

fn main() -> ExitCode {
    if let Ok(name) = std::env::var(SCENARIO) {
        return rank_main(&name);
    }
    let tests: [(&str, Test); 6] = [
        ("ddp_matches_one_process", ddp_matches_one_process),
        ("tcp_only_transport", tcp_only_transport),
        ("sampler_shards_are_disjoint_and_complete", sampler_shards_are_disjoint_and_complete),
        ("checkpoint_on_rank_zero_and_resume", checkpoint_on_rank_zero_and_resume),
        ("mismatched_models_are_an_error", mismatched_models_are_an_error),
        ("a_failing_rank_ends_the_job", a_failing_rank_ends_the_job),
    ];
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-')).unwrap_or_default();
    match mpirun_available() {
        Ok(version) => println!("MPI tests with {version}"),
        Err(reason) if std::env::var(REQUIRE).is_ok_and(|v| v == "1") => {
            eprintln!("MPI tests required ({REQUIRE}=1) but {reason}");
            return ExitCode::FAILURE;
        }
        Err(reason) => {
            println!("MPI tests skipped: {reason} (set {REQUIRE}=1 to make this a failure)");
            return ExitCode::SUCCESS;
        }
    }
    let root = std::env::temp_dir().join(format!("graphgrad-mpi-tests-{}", std::process::id()));
    let mut failed = Vec::new();
    let selected: Vec<_> = tests.iter().filter(|(name, _)| name.contains(filter.as_str())).collect();
    for (name, test) in &selected {
        let start = Instant::now();
        let out = root.join(name);
        let outcome = std::panic::catch_unwind(|| test(&out));
        let verdict = if outcome.is_ok() { "ok" } else { "FAILED" };
        println!("test {name} ... {verdict} ({:.1} s)", start.elapsed().as_secs_f64());
        if outcome.is_err() {
            failed.push(*name);
        }
    }
    println!("\nMPI tests: {} passed, {} failed {failed:?}", selected.len() - failed.len(), failed.len());
    if failed.is_empty() {
        let _ = std::fs::remove_dir_all(&root);
        ExitCode::SUCCESS
    } else {
        println!("logs kept in {}", root.display());
        ExitCode::FAILURE
    }
}
