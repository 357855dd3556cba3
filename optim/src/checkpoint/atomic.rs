//! Atomic file replacement: write a temporary file in the destination's directory, fsync it,
//! rename it over the destination, fsync the directory. A process killed at any point leaves
//! either the old file or the new one at the destination, never a mix; at worst a stray
//! `.NAME.tmp-PID-N` file remains beside it, which the next successful save of `NAME` removes
//! once process PID has ended (on Linux, where `/proc` says which processes live).

use crate::{Error, Result};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |source| Error::Io { action, path: path.to_path_buf(), source }
}

/// The temporary name used while writing `path`.
fn temp_path(dir: &Path, file_name: &str) -> PathBuf {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    dir.join(format!(".{file_name}.tmp-{}-{n}", std::process::id()))
}

/// Replaces `path` with `bytes` atomically (see the module docs).
///
/// ```
/// let dir = std::env::temp_dir().join(format!("graphgrad-doc-atomic-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let path = dir.join("weights.bin");
/// graphgrad_optim::write_atomic(&path, b"v1")?;
/// graphgrad_optim::write_atomic(&path, b"v2")?;
/// assert_eq!(std::fs::read(&path).unwrap(), b"v2");
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # Ok::<(), graphgrad_optim::Error>(())
/// ```
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let Some(file_name) = path.file_name().and_then(|n| n.to_str()) else {
        return Err(Error::InvalidConfig {
            what: "write_atomic",
            reason: format!("{} does not name a file", path.display()),
        });
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let tmp = temp_path(&dir, file_name);
    let result = write_and_rename(&tmp, path, &dir, bytes);
    if result.is_err() {
        // Best effort: the temporary file may not exist (or may already be renamed).
        let _ = fs::remove_file(&tmp);
    } else {
        remove_stale_temps(&dir, file_name);
    }
    result
}

/// Removes the temporary files of `file_name` that writers which have ended left in `dir`
/// (killed mid-save). A live writer's file, this process's included, is left alone. Best
/// effort: a file that cannot be read or removed stays.
fn remove_stale_temps(dir: &Path, file_name: &str) {
    if !cfg!(target_os = "linux") {
        return; // no portable way to tell a live writer from an ended one
    }
    let prefix = format!(".{file_name}.tmp-");
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(&prefix)) else { continue };
        let Some(pid) = rest.split_once('-').and_then(|(pid, _)| pid.parse::<u32>().ok()) else { continue };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = fs::remove_file(entry.path());
        }
    }
}

fn write_and_rename(tmp: &Path, path: &Path, dir: &Path, bytes: &[u8]) -> Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(tmp)
        .map_err(io("create temporary file", tmp))?;
    file.write_all(bytes).map_err(io("write", tmp))?;
    file.sync_all().map_err(io("fsync", tmp))?;
    drop(file);
    fs::rename(tmp, path).map_err(io("rename temporary file onto", path))?;
    sync_dir(dir)
}

/// Makes the rename durable: fsync of the directory entry (POSIX; a no-op elsewhere).
fn sync_dir(dir: &Path) -> Result<()> {
    if cfg!(unix) {
        File::open(dir).and_then(|d| d.sync_all()).map_err(io("fsync directory", dir))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_save_removes_the_temporary_files_of_ended_writers() {
        let dir = std::env::temp_dir().join(format!("graphgrad-stale-temps-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("model.ggck");
        // a writer killed mid-save (pid 0 is no process), one still writing (us), another file's
        let stale = dir.join(".model.ggck.tmp-0-3");
        let ours = dir.join(format!(".model.ggck.tmp-{}-999", std::process::id()));
        let other = dir.join(".other.ggck.tmp-0-1");
        for p in [&stale, &ours, &other] {
            fs::write(p, b"partial").unwrap();
        }
        write_atomic(&path, b"v1").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"v1");
        assert_eq!(!stale.exists(), cfg!(target_os = "linux"));
        assert!(ours.exists() && other.exists());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn missing_directory_is_an_io_error_naming_the_file() {
        let path = std::env::temp_dir().join("graphgrad-no-such-dir-4242/x.ckpt");
        let err = write_atomic(&path, b"x").unwrap_err().to_string();
        assert!(err.contains("graphgrad-no-such-dir-4242") && err.contains("create temporary file"), "{err}");
    }
}
