//! Rows that did not become samples, and why: bad rows under `skip_bad_rows`, and rows dropped by a loader
//! policy (e.g. unknown Fitzpatrick type). Kept so that a run can report exactly what it left out.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::DataError;

/// Why a source row is not in `Dataset::samples`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// Policy, not an error: the row's group is unknown and the loader drops unknown groups.
    UnknownGroup,
    MalformedRow,
    /// More or fewer fields than the header.
    FieldCount,
    Unparsable,
    MissingImage,
    OutsideLabelSet,
    DuplicateId,
    InvalidOneHot,
    /// An id of a split list that is not in the dataset.
    UnknownId,
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::UnknownGroup => "unknown_group",
            SkipReason::MalformedRow => "malformed_row",
            SkipReason::FieldCount => "field_count",
            SkipReason::Unparsable => "unparsable",
            SkipReason::MissingImage => "missing_image",
            SkipReason::OutsideLabelSet => "outside_label_set",
            SkipReason::DuplicateId => "duplicate_id",
            SkipReason::InvalidOneHot => "invalid_one_hot",
            SkipReason::UnknownId => "unknown_id",
        }
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One source row left out of the dataset.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    pub file: PathBuf,
    /// 1-based; the header is line 1.
    pub line: usize,
    pub field: String,
    pub reason: SkipReason,
    /// The full message (the error's Display for bad rows).
    pub message: String,
}

impl Skipped {
    /// The record of a row-level error; `None` for errors that cannot be skipped.
    pub fn from_error(err: &DataError) -> Option<Skipped> {
        let reason = err.skip_reason()?;
        let (file, line, field) = err.location()?;
        Some(Skipped {
            file: file.to_path_buf(),
            line,
            field: field.to_string(),
            reason,
            message: err.to_string(),
        })
    }
}

/// Number of skipped rows per reason; displays as `unknown_group: 565, missing_image: 3`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkipSummary {
    pub counts: BTreeMap<SkipReason, usize>,
}

impl SkipSummary {
    /// Rows skipped for `reason` (0 if none).
    pub fn get(&self, reason: SkipReason) -> usize {
        self.counts.get(&reason).copied().unwrap_or(0)
    }

    /// All skipped rows.
    pub fn total(&self) -> usize {
        self.counts.values().sum()
    }
}

impl fmt::Display for SkipSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.counts.is_empty() {
            return f.write_str("none");
        }
        for (i, (reason, n)) in self.counts.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{reason}: {n}")?;
        }
        Ok(())
    }
}

/// Counts `skipped` by reason.
pub fn skip_summary(skipped: &[Skipped]) -> SkipSummary {
    let mut counts = BTreeMap::new();
    for s in skipped {
        *counts.entry(s.reason).or_insert(0) += 1;
    }
    SkipSummary { counts }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_counts_and_displays() {
        let row = |reason| Skipped {
            file: "f.csv".into(),
            line: 2,
            field: "x".into(),
            reason,
            message: String::new(),
        };
        let s = skip_summary(&[
            row(SkipReason::MissingImage),
            row(SkipReason::UnknownGroup),
            row(SkipReason::MissingImage),
        ]);
        assert_eq!(s.get(SkipReason::MissingImage), 2);
        assert_eq!(s.get(SkipReason::DuplicateId), 0);
        assert_eq!(s.total(), 3);
        assert_eq!(s.to_string(), "unknown_group: 1, missing_image: 2");
        assert_eq!(skip_summary(&[]).to_string(), "none");
    }
}
