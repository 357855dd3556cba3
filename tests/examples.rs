//! Runs every example in `examples/` briefly (`GRAPHGRAD_FAST=1`) so that none rots: each must
//! exit successfully and write at least one file into its output folder.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Example names: the `.rs` files directly in `examples/`.
fn example_names() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("examples folder")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .collect();
    names.sort();
    names
}

/// The example binary built next to this test's profile folder (`cargo test` builds examples).
fn example_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe.parent().and_then(Path::parent).expect("target/<profile>");
    let binary = profile_dir.join("examples").join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if !binary.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--example", name])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo build");
        assert!(status.success(), "building example {name} failed");
    }
    binary
}

#[test]
fn every_example_runs_in_fast_mode() {
    let names = example_names();
    assert!(names.contains(&"digits".to_string()), "the main job example is missing: {names:?}");
    let out_root = std::env::temp_dir().join(format!("graphgrad-examples-{}", std::process::id()));
    for name in &names {
        let out = out_root.join(name);
        let output = Command::new(example_binary(name))
            .args(["--out", out.to_str().expect("utf-8 temp path")])
            .env("GRAPHGRAD_FAST", "1")
            .output()
            .unwrap_or_else(|e| panic!("cannot start example {name}: {e}"));
        assert!(
            output.status.success(),
            "example {name} failed:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let written = std::fs::read_dir(&out).map(|d| d.count()).unwrap_or(0);
        assert!(written > 0, "example {name} wrote nothing into {}", out.display());
    }
    let _ = std::fs::remove_dir_all(&out_root);
}

/// The main job, piped as in CI or `| tee log`: one plain line per epoch and a summary; a
/// budget of 0 epochs is an error, not a silent epoch.
#[test]
fn the_main_job_prints_plain_lines_when_piped() {
    let out = std::env::temp_dir().join(format!("graphgrad-digits-piped-{}", std::process::id()));
    let run = |extra: &[&str]| {
        Command::new(example_binary("digits"))
            .args(["--out", out.to_str().expect("utf-8 temp path")])
            .args(extra)
            .env("GRAPHGRAD_FAST", "1")
            .output()
            .expect("start digits")
    };
    let output = run(&[]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let epochs: Vec<&str> = stdout.lines().filter(|l| l.starts_with("epoch ")).collect();
    assert_eq!(epochs.len(), 2, "{stdout}");
    assert!(
        epochs[0].starts_with("epoch 1/2: train loss ") && epochs[1].starts_with("epoch 2/2: "),
        "{stdout}"
    );
    assert!(stdout.contains("digits: finished the budget of 2 epochs; best val/loss"), "{stdout}");
    assert!(stdout.contains("test set (269 images never seen in training): loss "), "{stdout}");
    let zero = run(&["--epochs", "0"]);
    assert!(!zero.status.success());
    assert!(String::from_utf8_lossy(&zero.stderr).contains("epochs: must be at least 1, got 0"));
    let _ = std::fs::remove_dir_all(&out);
}
