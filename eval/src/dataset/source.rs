//! A dataset as a program names it: the format, its files and options, serialisable (a run's
//! `config.toml` keeps it) and loadable with the matching real-format loader. The compressor,
//! the field-validation tool and the tests all read data through this one place.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::fitzpatrick17k::{LabelGranularity, SkinGrouping};
use super::{fitzpatrick17k, folder, isic2019, utkface, DataError, Dataset};

/// Which dataset, in which format, with which grouping and labels.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "format", rename_all = "kebab-case")]
pub enum DataSource {
    Fitzpatrick17k {
        csv: PathBuf,
        images: PathBuf,
        /// `binary` (I–III vs IV–VI) or `six` in `config.toml`.
        #[serde(with = "grouping_name")]
        grouping: SkinGrouping,
        /// `label` (fine), `nine` or `three` (the partition columns) in `config.toml`; the
        /// partition columns' full names, which configs could hold before, load too.
        #[serde(with = "label_name")]
        label_column: LabelGranularity,
        /// Keep unknown skin type as a group instead of dropping the rows.
        keep_unknown: bool,
    },
    Isic2019 {
        ground_truth: PathBuf,
        metadata: PathBuf,
        images: PathBuf,
        /// 3 (unknown/female/male, the paper) or 2 (female/male, unknown dropped).
        groups: u8,
    },
    Folder {
        csv: PathBuf,
        images: PathBuf,
        image_column: String,
        label_column: String,
        group_column: String,
    },
    /// UTKFace: attributes from the file names under `images`.
    Utkface {
        images: PathBuf,
        label: utkface::UtkAttribute,
        group: utkface::UtkAttribute,
    },
}

impl DataSource {
    /// Read it; with `skip_bad_rows`, malformed rows are listed in `Dataset::skipped` instead of
    /// stopping the load.
    pub fn load(&self, skip_bad_rows: bool) -> Result<Dataset, DataError> {
        let config = |m: String| DataError::Config(m);
        match self {
            DataSource::Fitzpatrick17k {
                csv,
                images,
                grouping,
                label_column,
                keep_unknown,
            } => {
                use fitzpatrick17k::{Fitzpatrick17kOptions, UnknownSkinType};
                let mut o = Fitzpatrick17kOptions::new(csv.clone(), images.clone());
                o.grouping = *grouping;
                o.labels = *label_column;
                o.unknown = if *keep_unknown {
                    UnknownSkinType::KeepAsGroup
                } else {
                    UnknownSkinType::Drop
                };
                o.skip_bad_rows = skip_bad_rows;
                fitzpatrick17k::load(&o)
            }
            DataSource::Isic2019 {
                ground_truth,
                metadata,
                images,
                groups,
            } => {
                use isic2019::{Isic2019Options, SexGrouping};
                let mut o =
                    Isic2019Options::new(ground_truth.clone(), metadata.clone(), images.clone());
                o.grouping = match groups {
                    2 => SexGrouping::TwoDropUnknown,
                    3 => SexGrouping::ThreeWithUnknown,
                    g => return Err(config(format!("ISIC2019 groups must be 2 or 3, got {g}"))),
                };
                o.skip_bad_rows = skip_bad_rows;
                isic2019::load(&o)
            }
            DataSource::Folder {
                csv,
                images,
                image_column,
                label_column,
                group_column,
            } => {
                let mut o = folder::FolderCsvOptions::new(csv.clone(), images.clone());
                o.image_column = image_column.clone();
                o.label_column = label_column.clone();
                o.group_column = group_column.clone();
                o.skip_bad_rows = skip_bad_rows;
                folder::load(&o)
            }
            DataSource::Utkface {
                images,
                label,
                group,
            } => utkface::load(&utkface::UtkfaceOptions {
                images_dir: images.clone(),
                label: *label,
                group: *group,
                skip_bad_rows,
            }),
        }
    }
}

// The names below are written here, beside the `config.toml` format that uses them, rather than
// as serde attributes on the enums, whose own serialisation other files already use.

impl SkinGrouping {
    /// The grouping as `config.toml` and `--grouping` name it.
    pub fn config_name(self) -> &'static str {
        match self {
            SkinGrouping::Binary => "binary",
            SkinGrouping::SixTypes => "six",
        }
    }

    /// The grouping `name` (`binary` or `six`) stands for; another name is an error saying
    /// which are accepted.
    pub fn from_config_name(name: &str) -> Result<Self, DataError> {
        match name {
            "binary" => Ok(SkinGrouping::Binary),
            "six" => Ok(SkinGrouping::SixTypes),
            g => Err(DataError::Config(format!(
                "Fitzpatrick17k grouping must be `binary` or `six`, got `{g}`"
            ))),
        }
    }
}

impl LabelGranularity {
    /// The label choice as `config.toml` and `--label-column` name it.
    pub fn config_name(self) -> &'static str {
        match self {
            LabelGranularity::Fine => "label",
            LabelGranularity::NinePartition => "nine",
            LabelGranularity::ThreePartition => "three",
        }
    }

    /// The label choice `name` stands for: `label`, `nine` or `three`, or a partition column's
    /// full name; another name is an error saying which are accepted.
    pub fn from_config_name(name: &str) -> Result<Self, DataError> {
        match name {
            "label" => Ok(LabelGranularity::Fine),
            "nine" | "nine_partition_label" => Ok(LabelGranularity::NinePartition),
            "three" | "three_partition_label" => Ok(LabelGranularity::ThreePartition),
            l => Err(DataError::Config(format!(
                "Fitzpatrick17k label must be `label`, `nine` or `three`, got `{l}`"
            ))),
        }
    }
}

/// `config.toml` keeps the grouping as the name the flag takes (`binary`, `six`), as it did when
/// the field was a free string, so old files load unchanged.
mod grouping_name {
    use super::*;
    use serde::{de::Error, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(g: &SkinGrouping, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(g.config_name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SkinGrouping, D::Error> {
        let name = String::deserialize(d)?;
        SkinGrouping::from_config_name(&name).map_err(D::Error::custom)
    }
}

/// `config.toml` keeps the label choice as the name the flag takes (`label`, `nine`, `three`).
mod label_name {
    use super::*;
    use serde::{de::Error, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(l: &LabelGranularity, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(l.config_name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<LabelGranularity, D::Error> {
        let name = String::deserialize(d)?;
        LabelGranularity::from_config_name(&name).map_err(D::Error::custom)
    }
}
