//! Which train/val/test split a run uses, as its `config.toml` records it: the stratified split (the
//! default, and what configs written before this choice existed mean), the paper's official split of the
//! dataset, or a saved `id,split` CSV. [`make_split`] turns the choice into sample indices.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::official_split::{self, OfficialSplit, VAL_HOLDOUT};
use super::{DataError, DataSource, Dataset, Split, SplitFractions};

/// How the samples are split.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum SplitMethod {
    /// By (class, group) stratum, with the configured fractions and split seed.
    #[default]
    Stratified,
    /// The paper's split (spec §7): Fitzpatrick17k from the two FairPrune lists (whose paths are kept
    /// here), ISIC 2019 from CPython's `Random(42).shuffle`. Val = 10% of the official train split.
    Official {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        train_list: Option<PathBuf>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        test_list: Option<PathBuf>,
    },
    /// A saved `id,split` CSV (a run's `split.csv`, or any list in that format).
    Csv { path: PathBuf },
}

impl SplitMethod {
    /// One line for the model card and the log (`source`: the dataset it splits).
    pub fn describe(&self, source: &DataSource, fractions: &SplitFractions, seed: u64) -> String {
        if let (SplitMethod::Official { .. }, DataSource::Fitzpatrick17k { csv, .. }) =
            (self, source)
        {
            if !matches!(
                self,
                SplitMethod::Official {
                    train_list: Some(_),
                    test_list: Some(_)
                }
            ) {
                let dir = csv.parent().unwrap_or(std::path::Path::new("."));
                let (a, b) = official_split::fitzpatrick17k_lists(dir);
                return SplitMethod::Official {
                    train_list: Some(a),
                    test_list: Some(b),
                }
                .describe(source, fractions, seed);
            }
        }
        match self {
            SplitMethod::Stratified => format!(
                "stratified by class and group, {}/{}/{} (seed {seed})",
                fractions.train, fractions.val, fractions.test
            ),
            SplitMethod::Official {
                train_list: Some(a),
                test_list: Some(b),
            } => format!(
                "official: train = ids of {}, test = ids of {}; val = {}% of train (seed {seed})",
                a.display(),
                b.display(),
                VAL_HOLDOUT * 100.0
            ),
            SplitMethod::Official { .. } => format!(
                "official: Python random.Random({}).shuffle of the ground-truth order, train = first \
                 60%, test = next 20%; val = {}% of train (seed {seed})",
                official_split::ISIC2019_SHUFFLE_SEED,
                VAL_HOLDOUT * 100.0
            ),
            SplitMethod::Csv { path } => format!("from {}", path.display()),
        }
    }
}

/// The split `method` gives for `dataset` (loaded from `source`), and a line to log if there is news
/// (what an official split left out). Official splits exist for Fitzpatrick17k and ISIC 2019 only.
pub fn make_split(
    dataset: &Dataset,
    source: &DataSource,
    method: &SplitMethod,
    fractions: &SplitFractions,
    seed: u64,
    skip_bad_rows: bool,
) -> Result<(Split, Option<String>), DataError> {
    let official = |o: OfficialSplit| -> Result<(Split, Option<String>), DataError> {
        let split = official_split::hold_out_val(dataset, &o.split, VAL_HOLDOUT, seed)?;
        Ok((split, Some(o.summary())))
    };
    match (method, source) {
        (SplitMethod::Stratified, _) => Ok((Split::stratified(dataset, fractions, seed)?, None)),
        (SplitMethod::Csv { path }, _) => Ok((Split::load_csv(path, dataset)?, None)),
        (
            SplitMethod::Official {
                train_list,
                test_list,
            },
            DataSource::Fitzpatrick17k { csv, .. },
        ) => {
            let dir = csv.parent().unwrap_or(std::path::Path::new("."));
            let (a, b) = official_split::fitzpatrick17k_lists(dir);
            let train = train_list.clone().unwrap_or(a);
            let test = test_list.clone().unwrap_or(b);
            official(official_split::fitzpatrick17k(
                dataset,
                csv,
                &train,
                &test,
                skip_bad_rows,
            )?)
        }
        (SplitMethod::Official { .. }, DataSource::Isic2019 { .. }) => {
            official(official_split::isic2019(dataset))
        }
        (SplitMethod::Official { .. }, other) => Err(DataError::Config(format!(
            "an official split exists for fitzpatrick17k and isic2019 only, not for the `{}` format; \
             use the stratified split or --split-csv",
            source_format(other)
        ))),
    }
}

fn source_format(source: &DataSource) -> &'static str {
    match source {
        DataSource::Fitzpatrick17k { .. } => "fitzpatrick17k",
        DataSource::Isic2019 { .. } => "isic2019",
        DataSource::Folder { .. } => "folder",
        DataSource::Utkface { .. } => "utkface",
    }
}
