//! The command-line flags that name a dataset (`--dataset`, `--csv`, `--images`, ...), shared by
//! `fq-compress` and `fq-validate` so that both accept exactly the same data descriptions.

use std::path::PathBuf;

use super::{DataError, DataSource};

/// Dataset format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DatasetKind {
    Fitzpatrick17k,
    Isic2019,
    Folder,
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
                grouping: self.grouping.clone(),
                label_column: self.label_column.clone().unwrap_or_else(|| "label".into()),
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
        })
    }

    /// Load the described dataset.
    pub fn load(&self) -> Result<super::Dataset, DataError> {
        self.to_source()?.load(self.skip_bad_rows)
    }
}
