//! The command-line flags that name a dataset (`--dataset`, `--csv`, `--images`, ...), shared by
//! `fq-compress` and `fq-validate` so that both accept exactly the same data descriptions.

use std::path::PathBuf;

use super::official_split::fitzpatrick17k_lists;
use super::{DataError, DataSource, SplitMethod};

/// Dataset format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DatasetKind {
    Fitzpatrick17k,
    Isic2019,
    Folder,
    /// Attributes from the file names (`[age]_[gender]_[race]_[date&time].jpg`) under `--images`.
    Utkface,
}

/// A labelled image set in any supported format.
#[derive(clap::Args, Debug, Clone)]
pub struct DataArgs {
    /// Dataset format.
    #[arg(long, value_enum, default_value = "fitzpatrick17k")]
    pub dataset: DatasetKind,
    /// Metadata CSV (Fitzpatrick17k `fitzpatrick17k.csv`, or the folder dataset's CSV).
    #[arg(long)]
    pub csv: Option<PathBuf>,
    /// Image directory.
    #[arg(long)]
    pub images: Option<PathBuf>,
    /// Fitzpatrick17k grouping: `binary` (I–III vs IV–VI) or `six`.
    #[arg(long, default_value = "binary")]
    pub grouping: String,
    /// Fitzpatrick17k label: `label` (fine), `nine` or `three`; folder: the label column's name.
    #[arg(long)]
    pub label_column: Option<String>,
    /// Fitzpatrick17k: keep unknown skin type as a group instead of dropping the rows.
    #[arg(long)]
    pub keep_unknown: bool,
    /// ISIC2019 one-hot ground-truth CSV.
    #[arg(long)]
    pub isic_ground_truth: Option<PathBuf>,
    /// ISIC2019 metadata CSV (sex).
    #[arg(long)]
    pub isic_metadata: Option<PathBuf>,
    /// ISIC2019 groups: 3 (unknown/female/male, the paper) or 2 (female/male).
    #[arg(long, default_value_t = 3)]
    pub isic_groups: u8,
    /// Folder dataset: image column name.
    #[arg(long, default_value = "image")]
    pub image_column: String,
    /// Folder dataset: group column name.
    #[arg(long, default_value = "group")]
    pub group_column: String,
    /// UTKFace: the class label (age in 20-year bins, gender or race).
    #[arg(long, value_enum, default_value = "gender")]
    pub utk_label: super::utkface::UtkAttribute,
    /// UTKFace: the group attribute (must differ from --utk-label).
    #[arg(long, value_enum, default_value = "race")]
    pub utk_group: super::utkface::UtkAttribute,
    /// Skip bad rows (reporting how many and why) instead of stopping at the first.
    #[arg(long)]
    pub skip_bad_rows: bool,
}

impl DataArgs {
    /// The described source; a flag its format needs and did not get is an error naming it.
    pub fn to_source(&self) -> Result<DataSource, DataError> {
        let need = |v: &Option<PathBuf>, flag: &str| -> Result<PathBuf, DataError> {
            v.clone().ok_or_else(|| {
                DataError::Config(format!(
                    "--{flag} is required for --dataset {:?}",
                    self.dataset
                ))
            })
        };
        Ok(match self.dataset {
            DatasetKind::Fitzpatrick17k => DataSource::Fitzpatrick17k {
                csv: need(&self.csv, "csv")?,
                images: need(&self.images, "images")?,
                grouping: super::fitzpatrick17k::SkinGrouping::from_config_name(&self.grouping)?,
                label_column: super::fitzpatrick17k::LabelGranularity::from_config_name(
                    self.label_column.as_deref().unwrap_or("label"),
                )?,
                keep_unknown: self.keep_unknown,
            },
            DatasetKind::Isic2019 => DataSource::Isic2019 {
                ground_truth: need(&self.isic_ground_truth, "isic-ground-truth")?,
                metadata: need(&self.isic_metadata, "isic-metadata")?,
                images: need(&self.images, "images")?,
                groups: self.isic_groups,
            },
            DatasetKind::Folder => DataSource::Folder {
                csv: need(&self.csv, "csv")?,
                images: need(&self.images, "images")?,
                image_column: self.image_column.clone(),
                label_column: self.label_column.clone().unwrap_or_else(|| "label".into()),
                group_column: self.group_column.clone(),
            },
            DatasetKind::Utkface => DataSource::Utkface {
                images: need(&self.images, "images")?,
                label: self.utk_label,
                group: self.utk_group,
            },
        })
    }

    /// Load the described dataset.
    pub fn load(&self) -> Result<super::Dataset, DataError> {
        self.to_source()?.load(self.skip_bad_rows)
    }
}

/// Which split `--split` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SplitKind {
    Stratified,
    Official,
}

/// The flags that choose a run's train/val/test split.
#[derive(clap::Args, Debug, Clone)]
pub struct SplitArgs {
    /// `stratified` (by class and group, with --split-seed) or `official`, the paper's split:
    /// Fitzpatrick17k `train_score.csv` = train and `all_val.csv` = test (by md5hash), ISIC2019
    /// Python `random.Random(42).shuffle` (train 60%, test 20%); val = 10% of the official train split.
    #[arg(long, value_enum, default_value = "stratified")]
    pub split: SplitKind,
    /// Fitzpatrick17k official split: the folder holding `train_score.csv` and `all_val.csv`
    /// (default: the folder of --csv, as in the FairPrune archive).
    #[arg(long)]
    pub split_dir: Option<PathBuf>,
    /// A saved split: a CSV with columns `id,split` (split = train, val or test), such as another
    /// run's `split.csv`. Replaces --split.
    #[arg(long)]
    pub split_csv: Option<PathBuf>,
}

impl SplitArgs {
    /// The split method these flags name for `data`; inconsistent flags are an error naming them.
    pub fn to_method(&self, data: &DataArgs) -> Result<SplitMethod, DataError> {
        if self.split_csv.is_some() && self.split == SplitKind::Official {
            return Err(DataError::Config(
                "--split-csv and --split official exclude each other".into(),
            ));
        }
        if self.split_dir.is_some()
            && !(self.split == SplitKind::Official && data.dataset == DatasetKind::Fitzpatrick17k)
        {
            return Err(DataError::Config(
                "--split-dir is for --split official with --dataset fitzpatrick17k".into(),
            ));
        }
        if let Some(path) = &self.split_csv {
            return Ok(SplitMethod::Csv { path: path.clone() });
        }
        Ok(match (self.split, data.dataset) {
            (SplitKind::Stratified, _) => SplitMethod::Stratified,
            (SplitKind::Official, DatasetKind::Fitzpatrick17k) => {
                let dir = match (&self.split_dir, &data.csv) {
                    (Some(d), _) => d.clone(),
                    (None, Some(csv)) => csv.parent().map(PathBuf::from).unwrap_or_default(),
                    (None, None) => {
                        return Err(DataError::Config(
                            "--split official needs --split-dir or --csv for fitzpatrick17k".into(),
                        ))
                    }
                };
                let (train, test) = fitzpatrick17k_lists(&dir);
                SplitMethod::Official {
                    train_list: Some(train),
                    test_list: Some(test),
                }
            }
            (SplitKind::Official, DatasetKind::Isic2019) => SplitMethod::Official {
                train_list: None,
                test_list: None,
            },
            (SplitKind::Official, other) => {
                return Err(DataError::Config(format!(
                    "--split official exists for fitzpatrick17k and isic2019 only, not {}; \
                     use --split stratified or --split-csv",
                    format!("{other:?}").to_lowercase()
                )))
            }
        })
    }
}
