//! Fitzpatrick17k: the public `fitzpatrick17k.csv` (columns `md5hash, fitzpatrick_scale, ..., label,
//! nine_partition_label, three_partition_label, ...`; the official code's copy names the skin-type column
//! `fitzpatrick`) with images `<images_dir>/**/<md5hash>.{jpg,jpeg,png}` (spec §7.1).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::builder::{dropped, Builder, Fields, Outcome, Pending};
use super::table::{Column, Row, Table};
use super::{read_id_list, DataError, Dataset, IdList, ImageIndex};

/// Image file extensions searched, in order of preference when stems collide.
pub const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png"];

/// How skin types become groups.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkinGrouping {
    /// Paper setting: types I–III = group 0 `"I-III"`, IV–VI = group 1 `"IV-VI"`.
    #[default]
    Binary,
    /// One group per type, `"I"`..`"VI"`.
    SixTypes,
}

/// What to do with rows whose skin type is unknown (`-1`, empty or `UNK`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnknownSkinType {
    /// Spec default: leave them out (recorded in `skipped` as `unknown_group`).
    #[default]
    Drop,
    /// Keep them as a last group named `"unknown"`.
    KeepAsGroup,
}

/// Which label column defines the classes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LabelGranularity {
    /// `label`: 114 fine-grained diagnoses (paper setting).
    #[default]
    Fine,
    /// `nine_partition_label`.
    NinePartition,
    /// `three_partition_label`.
    ThreePartition,
}

impl LabelGranularity {
    pub fn column(self) -> &'static str {
        match self {
            LabelGranularity::Fine => "label",
            LabelGranularity::NinePartition => "nine_partition_label",
            LabelGranularity::ThreePartition => "three_partition_label",
        }
    }
}

/// Options of [`load`]; [`Fitzpatrick17kOptions::new`] gives the spec defaults.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fitzpatrick17kOptions {
    pub csv: PathBuf,
    pub images_dir: PathBuf,
    pub grouping: SkinGrouping,
    pub unknown: UnknownSkinType,
    pub labels: LabelGranularity,
    /// Explicit class list (a label outside it is an error); `None`: sorted unique labels of the kept rows.
    pub classes: Option<Vec<String>>,
    /// Record bad rows in `Dataset::skipped` instead of failing on the first.
    pub skip_bad_rows: bool,
}

impl Fitzpatrick17kOptions {
    /// Spec defaults: binary grouping, unknown types dropped, the fine `label` column, strict rows.
    pub fn new(csv: impl Into<PathBuf>, images_dir: impl Into<PathBuf>) -> Self {
        Fitzpatrick17kOptions {
            csv: csv.into(),
            images_dir: images_dir.into(),
            grouping: SkinGrouping::default(),
            unknown: UnknownSkinType::default(),
            labels: LabelGranularity::default(),
            classes: None,
            skip_bad_rows: false,
        }
    }

    /// The FairPrune archive layout: `<root>/fitzpatrick17k.csv` and images in `<root>/images/` or
    /// `<root>/dataset_images/` (the first that exists; `images/` if neither does).
    pub fn from_root(root: &Path) -> Self {
        let images = ["images", "dataset_images"]
            .iter()
            .map(|d| root.join(d))
            .find(|p| p.is_dir())
            .unwrap_or_else(|| root.join("images"));
        Self::new(root.join("fitzpatrick17k.csv"), images)
    }
}

/// Group names for the options (the unknown group last, if kept).
pub fn group_names(grouping: SkinGrouping, unknown: UnknownSkinType) -> Vec<String> {
    let mut names: Vec<String> = match grouping {
        SkinGrouping::Binary => vec!["I-III".into(), "IV-VI".into()],
        SkinGrouping::SixTypes => ["I", "II", "III", "IV", "V", "VI"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
    };
    if unknown == UnknownSkinType::KeepAsGroup {
        names.push("unknown".into());
    }
    names
}

/// Loads the metadata CSV and checks that every kept row has an image.
pub fn load(opts: &Fitzpatrick17kOptions) -> Result<Dataset, DataError> {
    let table = Table::open(&opts.csv)?;
    let id_col = table.column("md5hash")?;
    let type_col = table.column_any(&["fitzpatrick_scale", "fitzpatrick"])?;
    let label_col = table.column(opts.labels.column())?;
    let index = ImageIndex::build(&opts.images_dir, IMAGE_EXTENSIONS)?;
    let groups = group_names(opts.grouping, opts.unknown);
    let fields = Fields {
        id: id_col.name.clone(),
        label: label_col.name.clone(),
        group: type_col.name.clone(),
    };
    let mut builder = Builder::new(
        opts.skip_bad_rows,
        fields,
        opts.classes.as_deref(),
        Some(&groups),
    )?;
    let cols = Cols {
        id: id_col,
        skin_type: type_col,
        label: label_col,
    };
    for row in table.rows() {
        let outcome = row.and_then(|row| parse_row(&row, &cols, opts, &groups, &index));
        builder.accept(outcome)?;
    }
    builder.finish("fitzpatrick17k", &opts.csv)
}

/// Reads an official split list (`train_score.csv`, `all_val.csv`, ...): only the `md5hash` column.
pub fn read_split_ids(path: &Path) -> Result<IdList, DataError> {
    read_id_list(path, "md5hash")
}

struct Cols {
    id: Column,
    skin_type: Column,
    label: Column,
}

fn parse_row(
    row: &Row,
    cols: &Cols,
    opts: &Fitzpatrick17kOptions,
    groups: &[String],
    index: &ImageIndex,
) -> Result<Outcome, DataError> {
    let id = row.get_nonempty(&cols.id, "an md5 hash")?;
    let raw_type = row.get(&cols.skin_type)?;
    let group = match parse_skin_type(raw_type) {
        Some(Some(t)) => match opts.grouping {
            SkinGrouping::Binary => groups[usize::from(t > 3)].clone(),
            SkinGrouping::SixTypes => groups[usize::from(t - 1)].clone(),
        },
        Some(None) => match opts.unknown {
            UnknownSkinType::Drop => {
                return Ok(dropped(
                    row.origin(),
                    &cols.skin_type.name,
                    format!("unknown skin type `{raw_type}` (dropped by policy)"),
                ))
            }
            UnknownSkinType::KeepAsGroup => "unknown".to_string(),
        },
        None => {
            return Err(row.unparsable(
                &cols.skin_type,
                raw_type,
                "a Fitzpatrick type 1..6, or -1 / empty / UNK for unknown",
            ))
        }
    };
    let label = row.get_nonempty(&cols.label, "a label")?;
    let image = index
        .get(id)
        .ok_or_else(|| row.missing_image(&cols.id, id, index.dir()))?;
    Ok(Outcome::Keep(Pending {
        id: id.to_string(),
        image: image.to_path_buf(),
        label: label.to_string(),
        group,
        origin: row.origin(),
    }))
}

/// `Some(Some(1..=6))` for a known type, `Some(None)` for unknown, `None` if unparsable.
/// Integral floats (`"3.0"`) are accepted, as pandas may write the column that way.
fn parse_skin_type(s: &str) -> Option<Option<u8>> {
    if s.is_empty() || s.eq_ignore_ascii_case("unk") {
        return Some(None);
    }
    let v: f64 = s.parse().ok()?;
    if v == -1.0 {
        return Some(None);
    }
    if v.fract() == 0.0 && (1.0..=6.0).contains(&v) {
        return Some(Some(v as u8));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skin_type_parsing() {
        assert_eq!(parse_skin_type("1"), Some(Some(1)));
        assert_eq!(parse_skin_type("6.0"), Some(Some(6)));
        assert_eq!(parse_skin_type("-1"), Some(None));
        assert_eq!(parse_skin_type(""), Some(None));
        assert_eq!(parse_skin_type("UNK"), Some(None));
        assert_eq!(parse_skin_type("unk"), Some(None));
        assert_eq!(parse_skin_type("7"), None);
        assert_eq!(parse_skin_type("0"), None);
        assert_eq!(parse_skin_type("2.5"), None);
        assert_eq!(parse_skin_type("NaN"), None);
        assert_eq!(parse_skin_type("three"), None);
    }

    #[test]
    fn group_name_lists() {
        assert_eq!(
            group_names(SkinGrouping::Binary, UnknownSkinType::Drop),
            ["I-III", "IV-VI"]
        );
        assert_eq!(
            group_names(SkinGrouping::SixTypes, UnknownSkinType::KeepAsGroup),
            ["I", "II", "III", "IV", "V", "VI", "unknown"]
        );
    }
}
