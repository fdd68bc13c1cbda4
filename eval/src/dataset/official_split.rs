//! The papers' own splits (spec §7), so that real-data numbers can be compared with Table 1:
//! - Fitzpatrick17k: the FairPrune archive's `train_score.csv` (train) and `all_val.csv` (test), matched by
//!   `md5hash`;
//! - ISIC 2019: the loaded images in ground-truth file order, shuffled with CPython's
//!   `random.Random(42).shuffle`; train = first `int(0.6 n)`, test = `[int(0.6 n), int(0.8 n))`, the last
//!   20% unused.
//!
//! Neither paper has a validation split; spec §6.1 holds out 10% of the training split for early stopping,
//! which [`hold_out_val`] does (stratified, with the run's split seed: the paper's torch `random_split`
//! permutation is not reproduced).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::mt19937::PyRandom;
use super::split::{Split, SplitFractions, SplitName};
use super::{read_id_list, DataError, Dataset, SkipReason, Skipped};

/// The seed of the ISIC 2019 shuffle (fixed, independent of the run's seed; spec §7.2).
pub const ISIC2019_SHUFFLE_SEED: u128 = 42;
/// File names of the Fitzpatrick17k split lists in the FairPrune archive.
pub const FITZPATRICK17K_TRAIN_LIST: &str = "train_score.csv";
pub const FITZPATRICK17K_TEST_LIST: &str = "all_val.csv";
/// Share of the official training split held out for early stopping (spec §6.1).
pub const VAL_HOLDOUT: f64 = 0.1;

/// An official split and what did not fit it.
#[derive(Clone, Debug, PartialEq)]
pub struct OfficialSplit {
    pub split: Split,
    /// Listed ids that are rows of the metadata CSV but not samples (the loader dropped them, e.g. for an
    /// unknown skin type): left out silently, as the spec's "dropped everywhere" says.
    pub listed_but_dropped: usize,
    /// Listed ids repeated within one list, and (only under `skip_bad_rows`; otherwise the first is an
    /// error) listed ids that are nowhere in the metadata CSV.
    pub skipped: Vec<Skipped>,
    /// Samples in no split (not listed, or the unused last 20% of ISIC).
    pub in_neither: usize,
}

impl OfficialSplit {
    /// One line for the log.
    pub fn summary(&self) -> String {
        format!(
            "official split: train {} / test {}; {} listed ids dropped by the loader, {} listed ids \
             skipped, {} samples in no split",
            self.split.train.len(),
            self.split.test.len(),
            self.listed_but_dropped,
            self.skipped.len(),
            self.in_neither
        )
    }
}

/// The ISIC 2019 split of `n` samples (in ground-truth file order): CPython's
/// `random.Random(seed).shuffle(list(range(n)))`, then train = first `int(0.6 n)`, test = next up to
/// `int(0.8 n)`. Indices are sorted within each split.
pub fn isic2019_shuffle_split(n: usize, seed: u128) -> Split {
    let mut order: Vec<usize> = (0..n).collect();
    PyRandom::new(seed).shuffle(&mut order);
    // Python's `int(0.6 * n)`: the f64 product truncated.
    let a = (0.6 * n as f64) as usize;
    let b = (0.8 * n as f64) as usize;
    let mut train = order[..a].to_vec();
    let mut test = order[a..b].to_vec();
    train.sort_unstable();
    test.sort_unstable();
    Split {
        train,
        val: Vec::new(),
        test,
    }
}

/// The ISIC 2019 split of a loaded dataset (its samples are in ground-truth file order).
pub fn isic2019(dataset: &Dataset) -> OfficialSplit {
    let split = isic2019_shuffle_split(dataset.len(), ISIC2019_SHUFFLE_SEED);
    let in_neither = dataset.len() - split.train.len() - split.test.len();
    OfficialSplit {
        split,
        listed_but_dropped: 0,
        skipped: Vec::new(),
        in_neither,
    }
}

/// The Fitzpatrick17k split: ids of `train_list` go to train, of `test_list` to test (column `md5hash`).
/// `metadata_csv` is the dataset's CSV: a listed id that is a row there but not a sample was dropped by the
/// loader and is left out; a listed id that is not in it at all is an error naming the list's file and
/// line (with `skip_bad_rows`: recorded in `skipped`). An id in both lists is always an error.
pub fn fitzpatrick17k(
    dataset: &Dataset,
    metadata_csv: &Path,
    train_list: &Path,
    test_list: &Path,
    skip_bad_rows: bool,
) -> Result<OfficialSplit, DataError> {
    let train = read_id_list(train_list, "md5hash")?;
    let test = read_id_list(test_list, "md5hash")?;
    let metadata: HashSet<String> = read_id_list(metadata_csv, "md5hash")?
        .ids
        .into_iter()
        .map(|(_, id)| id)
        .collect();
    let (split, found) = Split::from_id_lists(
        dataset,
        &[(SplitName::Train, &train), (SplitName::Test, &test)],
    )?;
    let mut listed_but_dropped = 0;
    let mut skipped = Vec::new();
    for s in found {
        let id = listed_id(&s, &train, &test);
        if s.reason == SkipReason::UnknownId && id.is_some_and(|id| metadata.contains(id)) {
            listed_but_dropped += 1;
            continue;
        }
        // A repeat within one list is harmless (same split): recorded, never an error.
        if let (false, SkipReason::UnknownId, Some(id)) = (skip_bad_rows, s.reason, id) {
            return Err(DataError::UnknownId {
                file: s.file.clone(),
                line: s.line,
                field: s.field.clone(),
                id: id.to_string(),
                dataset: format!("{} (nor in {})", dataset.name, metadata_csv.display()),
            });
        }
        skipped.push(s);
    }
    let in_neither = dataset.len() - split.train.len() - split.test.len();
    Ok(OfficialSplit {
        split,
        listed_but_dropped,
        skipped,
        in_neither,
    })
}

/// The id at the skipped row of one of the two lists.
fn listed_id<'a>(
    s: &Skipped,
    train: &'a super::IdList,
    test: &'a super::IdList,
) -> Option<&'a str> {
    [train, test]
        .into_iter()
        .filter(|l| l.file == s.file)
        .flat_map(|l| l.ids.iter())
        .find(|(line, _)| *line == s.line)
        .map(|(_, id)| id.as_str())
}

/// Moves a stratified `fraction` of the training split to val (by class and group, seeded), leaving
/// test alone; used when a split has no validation set of its own (spec §6.1's early-stopping holdout).
pub fn hold_out_val(
    dataset: &Dataset,
    split: &Split,
    fraction: f64,
    seed: u64,
) -> Result<Split, DataError> {
    let sub = dataset.subset(&split.train);
    let inner = Split::stratified(
        &sub,
        &SplitFractions {
            train: 1.0 - fraction,
            val: fraction,
            test: 0.0,
        },
        seed,
    )?;
    let map = |v: &[usize]| -> Vec<usize> {
        let mut out: Vec<usize> = v.iter().map(|&i| split.train[i]).collect();
        out.sort_unstable();
        out
    };
    Ok(Split {
        train: map(&inner.train),
        val: map(&inner.val),
        test: split.test.clone(),
    })
}

/// The two list files in a directory (the archive layout).
pub fn fitzpatrick17k_lists(dir: &Path) -> (PathBuf, PathBuf) {
    (
        dir.join(FITZPATRICK17K_TRAIN_LIST),
        dir.join(FITZPATRICK17K_TEST_LIST),
    )
}
