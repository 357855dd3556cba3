//! The README's "Use it in your project", followed by a new user: a crate of its own in a
//! temporary folder, with a path dependency on this workspace and no `rand` of its own, that
//! builds and runs a program written with the prelude (the RNG, a layer, operators and
//! `#[derive(Module)]`, whose generated code must name the facade, not `graphgrad_nn`).
//!
//! The crate shares this workspace's `Cargo.lock` (the same versions) and target folder, and
//! declares the workspace's profiles, so the third-party dependencies already built are
//! reused. The workspace's own crates are not: seen from another root package they build
//! with another `-C metadata` hash even at the same settings (measured: graphgrad-ops and the
//! other six rebuilt, about 1–2 minutes on the 2-core development machine; once built, a run
//! takes 5 s), so the README's test command leaves it out (ignored) and `.ci/run` runs it on its
//! own: `cargo test --test scratch_crate -- --ignored`. `--offline`: it needs no network.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// The program the README shows, with a derived module and operators.
const MAIN: &str = r#"use graphgrad::prelude::*;

#[derive(Module)]
struct Net {
    hidden: Linear,
    output: Linear,
}

impl Net {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.output.forward(&self.hidden.forward(x)?.relu())
    }
}

fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let net = Net { hidden: LinearConfig::new(4, 8).init(&mut rng)?, output: LinearConfig::new(8, 1).init(&mut rng)? };
    let mut optimizer = Sgd::new(net.named_parameters(), SgdConfig::new(0.05))?;
    let x = Tensor::randn(&[16, 4], 0.0, 1.0, DType::F32, &mut rng)?;
    let y = (x.sum(&[1], true)? * 0.5).tanh();
    let mut losses = Vec::new();
    for _ in 0..20 {
        let loss = (Module::forward(&net, &x)? - &y)?.square().mean_all();
        optimizer.zero_grad();
        loss.backward()?;
        optimizer.step()?;
        losses.push(loss.item()?);
    }
    let noise: f64 = graphgrad::rand::Rng::gen(&mut rng);
    assert!(losses[19] < losses[0], "{losses:?}");
    println!("scratch crate: loss {:.4} -> {:.4} ({noise:.3})", losses[0], losses[19]);
    Ok(())
}
"#;

/// The workspace's `[profile.*]` sections, so the scratch crate builds its dependencies as
/// the workspace does (a dependent crate's profiles are its own, not its dependency's). In
/// the workspace, `[profile.dev.package."*"]` applies to the dependencies but not to the
/// members; seen from the scratch crate the members are dependencies too, so each gets an
/// override back to the dev profile's own `opt-level` (else all of them would be rebuilt).
fn profiles(workspace: &Path, manifest: &str) -> String {
    let mut out = String::new();
    let mut section = String::new();
    let mut dev_opt_level = None;
    for line in manifest.lines() {
        if line.starts_with('[') {
            section = line.trim().to_string();
        }
        if section == "[profile.dev]" && line.trim_start().starts_with("opt-level") {
            dev_opt_level = line.split('=').nth(1).map(|v| v.trim().to_string());
        }
        if section.starts_with("[profile.") {
            out.push_str(line);
            out.push('\n');
        }
    }
    if let Some(level) = dev_opt_level {
        let members = manifest.lines().find(|l| l.trim_start().starts_with("members")).unwrap_or_default();
        let dirs = members.split('"').skip(1).step_by(2);
        let names = dirs.map(|d| package_name(&workspace.join(d))).chain(["graphgrad".to_string()]);
        for name in names {
            out.push_str(&format!("\n[profile.dev.package.{name}]\nopt-level = {level}\n"));
        }
    }
    out
}

/// The `name` of the package in `dir`.
fn package_name(dir: &Path) -> String {
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).expect("a member's Cargo.toml");
    let line = manifest.lines().find(|l| l.trim_start().starts_with("name")).expect("a package name");
    line.split('"').nth(1).expect("a quoted name").to_string()
}

/// The target folder and profile folder this test binary was built into
/// (`<target>/<profile>/deps/scratch_crate-<hash>`).
fn target_and_profile() -> (PathBuf, String) {
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile_dir = exe.parent().and_then(Path::parent).expect("<target>/<profile>/deps");
    let profile = profile_dir.file_name().and_then(|n| n.to_str()).expect("a profile folder").to_string();
    (profile_dir.parent().expect("<target>").to_path_buf(), profile)
}

#[test]
#[ignore = "rebuilds the workspace's crates for another root package (about 2 minutes cold); \
            run with `cargo test --test scratch_crate -- --ignored`"]
fn a_crate_that_follows_the_readme_builds_and_runs() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = std::env::temp_dir().join(format!("graphgrad-scratch-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("src")).unwrap();
    let manifest = std::fs::read_to_string(workspace.join("Cargo.toml")).unwrap();
    let cargo_toml = format!(
        "[package]\nname = \"scratch\"\nversion = \"0.1.0\"\nedition = \"2021\"\npublish = false\n\n\
         [dependencies]\ngraphgrad = {{ path = {:?} }}\n\n[workspace]\n\n{}",
        workspace.display().to_string(),
        profiles(workspace, &manifest)
    );
    std::fs::write(dir.join("Cargo.toml"), cargo_toml).unwrap();
    std::fs::write(dir.join("src/main.rs"), MAIN).unwrap();
    std::fs::copy(workspace.join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();

    let (target, profile) = target_and_profile();
    let profile_flag = match profile.as_str() {
        "debug" => "dev".to_string(),
        other => other.to_string(),
    };
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let started = Instant::now();
    let output = Command::new(&cargo)
        .args(["run", "--offline", "--quiet", "--profile", &profile_flag])
        .current_dir(&dir)
        .env("CARGO_TARGET_DIR", &target)
        .env_remove("RUSTFLAGS")
        .output()
        .expect("cargo runs");
    let took = started.elapsed();
    let _ = std::fs::remove_dir_all(&dir);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the scratch crate failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("scratch crate: loss"), "{stdout}");
    eprintln!("scratch crate built and ran in {:.1} s", took.as_secs_f64());
}
