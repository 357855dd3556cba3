//! `metrics.jsonl` (one object per epoch) and `steps.jsonl` (one per step, when asked).
//!
//! An epoch line: `{"epoch":3,"step":120,"lr":0.001,"seconds":0.41,"train/loss":0.21,...}`;
//! a step line: `{"epoch":3,"step":97,"loss":0.25}`. Values that are not finite are written as
//! `null` (JSON has no NaN).

use crate::error::{io, Result};
use crate::metrics::{EpochRecord, History};
use serde_json::{Map, Number, Value};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// Appends records to the JSON-lines files of a run.
pub struct JsonLines {
    epochs: (PathBuf, BufWriter<File>),
    steps: Option<(PathBuf, BufWriter<File>)>,
}

fn number(v: f64) -> Value {
    Number::from_f64(v).map_or(Value::Null, Value::Number)
}

fn epoch_line(record: &EpochRecord) -> String {
    let mut map = Map::new();
    map.insert("epoch".into(), Value::from(record.epoch));
    map.insert("step".into(), Value::from(record.step));
    map.insert("lr".into(), number(record.lr));
    map.insert("seconds".into(), number(record.seconds));
    for (name, &v) in &record.values {
        map.insert(name.clone(), number(v));
    }
    Value::Object(map).to_string()
}

fn step_line(epoch: u64, step: u64, loss: f64) -> String {
    let mut map = Map::new();
    map.insert("epoch".into(), Value::from(epoch));
    map.insert("step".into(), Value::from(step));
    map.insert("loss".into(), number(loss));
    Value::Object(map).to_string()
}

fn create(path: PathBuf) -> Result<(PathBuf, BufWriter<File>)> {
    let file = File::create(&path).map_err(io("create", &path))?;
    Ok((path, BufWriter::new(file)))
}

impl JsonLines {
    /// Creates `metrics.jsonl` (and `steps.jsonl` when `steps`) in `dir`, holding `history`.
    pub fn create(dir: &Path, history: &History, steps: bool) -> Result<JsonLines> {
        let mut logs = JsonLines {
            epochs: create(dir.join("metrics.jsonl"))?,
            steps: if steps { Some(create(dir.join("steps.jsonl"))?) } else { None },
        };
        let mut epoch_of_step = history.epochs.iter().map(|r| (r.step, r.epoch)).peekable();
        for &(step, loss) in &history.steps {
            while epoch_of_step.peek().is_some_and(|&(last_step, _)| last_step < step) {
                epoch_of_step.next();
            }
            let epoch = epoch_of_step.peek().map_or(history.epochs.len() as u64 + 1, |&(_, e)| e);
            logs.step(epoch, step, loss)?;
        }
        for record in &history.epochs {
            logs.epoch(record)?;
        }
        logs.flush()?;
        Ok(logs)
    }

    /// Appends one epoch.
    pub fn epoch(&mut self, record: &EpochRecord) -> Result<()> {
        let (path, w) = &mut self.epochs;
        writeln!(w, "{}", epoch_line(record)).map_err(io("write", path.as_path()))
    }

    /// Appends one step (ignored when step logging is off).
    pub fn step(&mut self, epoch: u64, step: u64, loss: f64) -> Result<()> {
        match &mut self.steps {
            Some((path, w)) => {
                writeln!(w, "{}", step_line(epoch, step, loss)).map_err(io("write", path.as_path()))
            }
            None => Ok(()),
        }
    }

    /// Writes buffered lines to the files.
    pub fn flush(&mut self) -> Result<()> {
        let (path, w) = &mut self.epochs;
        w.flush().map_err(io("write", path.as_path()))?;
        if let Some((path, w)) = &mut self.steps {
            w.flush().map_err(io("write", path.as_path()))?;
        }
        Ok(())
    }
}
