//! The check that every rank holds the same model before anything is broadcast or reduced.
//!
//! Each rank describes its parameters, buffers and bucket size in one line per item; the
//! descriptions are gathered on every rank and compared with rank 0's. Every rank sees the same
//! descriptions, so every rank reaches the same verdict and returns the same error: no rank is
//! left waiting in a broadcast of a tensor another rank does not have.

use crate::group::ProcessGroup;
use crate::{Error, Result};
use graphgrad_autodiff::Var;
use std::collections::BTreeMap;

/// `kind name` → `dtype shape`, in the model's order.
type Description = Vec<(String, String)>;

fn describe(params: &[(String, Var)], buffers: &[(String, Var)], settings: &str) -> String {
    let mut lines = vec![format!("settings\t{settings}")];
    for (kind, items) in [("parameter", params), ("buffer", buffers)] {
        for (name, var) in items {
            lines.push(format!("{kind} {name}\t{} {:?}", var.dtype(), var.shape()));
        }
    }
    lines.join("\n")
}

fn parse(text: &str) -> Description {
    text.lines()
        .map(|line| {
            let (key, value) = line.split_once('\t').unwrap_or((line, ""));
            (key.to_string(), value.to_string())
        })
        .collect()
}

/// The differences of `other` (rank `rank`) from rank 0's description, one line each.
fn differences(rank: usize, reference: &Description, other: &Description) -> Vec<String> {
    let mut out = Vec::new();
    let theirs: BTreeMap<&str, &str> = other.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let ours: BTreeMap<&str, &str> = reference.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    for (key, value) in &ours {
        match theirs.get(key) {
            None => out.push(format!("rank {rank} has no {key} (rank 0: {value})")),
            Some(v) if v != value => out.push(format!("{key} is {v} on rank {rank} but {value} on rank 0")),
            Some(_) => {}
        }
    }
    for (key, value) in &theirs {
        if !ours.contains_key(key) {
            out.push(format!("rank {rank} has {key} ({value}), which rank 0 does not"));
        }
    }
    if out.is_empty() && reference != other {
        out.push(format!("rank {rank} lists the same tensors as rank 0 in another order"));
    }
    out
}

/// Checks, collectively, that every rank has the same parameters and buffers (names, order,
/// types, shapes) and the same `settings`; otherwise every rank returns the same
/// [`Error::ModelMismatch`].
pub(crate) fn check_same_model(
    group: &dyn ProcessGroup,
    params: &[(String, Var)],
    buffers: &[(String, Var)],
    settings: &str,
) -> Result<()> {
    let all = group.all_gather_bytes(describe(params, buffers, settings).as_bytes())?;
    let all: Vec<Description> = all.iter().map(|bytes| parse(&String::from_utf8_lossy(bytes))).collect();
    let differences: Vec<String> =
        all.iter().enumerate().skip(1).flat_map(|(rank, d)| differences(rank, &all[0], d)).collect();
    if differences.is_empty() {
        Ok(())
    } else {
        Err(Error::ModelMismatch { differences })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use graphgrad_autodiff::{DType, Tensor};

    fn var(name: &str, shape: &[usize]) -> (String, Var) {
        (name.to_string(), Var::new(name, &Tensor::zeros(shape, DType::F32).unwrap()))
    }

    #[test]
    fn names_every_difference_with_its_rank() {
        let zero = parse(&describe(&[var("w", &[2, 3]), var("b", &[3])], &[], "bucket 8"));
        let same = parse(&describe(&[var("w", &[2, 3]), var("b", &[3])], &[], "bucket 8"));
        assert!(differences(1, &zero, &same).is_empty());
        let other = parse(&describe(&[var("w", &[3, 3]), var("c", &[3])], &[var("m", &[1])], "bucket 16"));
        assert_eq!(
            differences(1, &zero, &other),
            [
                "rank 1 has no parameter b (rank 0: f32 [3])",
                "parameter w is f32 [3, 3] on rank 1 but f32 [2, 3] on rank 0",
                "settings is bucket 16 on rank 1 but bucket 8 on rank 0",
                "rank 1 has buffer m (f32 [1]), which rank 0 does not",
                "rank 1 has parameter c (f32 [3]), which rank 0 does not",
            ]
        );
        let swapped = parse(&describe(&[var("b", &[3]), var("w", &[2, 3])], &[], "bucket 8"));
        assert_eq!(
            differences(2, &zero, &swapped),
            ["rank 2 lists the same tensors as rank 0 in another order"]
        );
    }
}
