//! ISIC 2019: the one-hot ground truth `ISIC_2019_Training_GroundTruth.csv` (`image,MEL,...,UNK`, classes in
//! file order) joined on `image` with `ISIC_2019_Training_Metadata.csv` for the sex attribute, images
//! `<images_dir>/**/<image>.jpg` (spec §7.2).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::builder::{dropped, Builder, Fields, Outcome, Pending};
use super::table::{Column, Row, Table};
use super::{DataError, Dataset, ImageIndex};

/// Image file extensions searched (the archive has only JPEGs; PNG allows re-encoded copies).
pub const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png"];

/// Suffix of the ids of the downsampled images in the real data (`ISIC_0000080_downsampled`).
const DOWNSAMPLED: &str = "_downsampled";

/// How the `sex` attribute becomes groups.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SexGrouping {
    /// Paper: `"unknown"`=0, `"female"`=1, `"male"`=2; empty/other sex or no metadata row = unknown.
    #[default]
    ThreeWithUnknown,
    /// Official code HEAD: `"female"`=0, `"male"`=1; other rows dropped.
    TwoDropUnknown,
}

impl SexGrouping {
    pub fn group_names(self) -> Vec<String> {
        let names: &[&str] = match self {
            SexGrouping::ThreeWithUnknown => &["unknown", "female", "male"],
            SexGrouping::TwoDropUnknown => &["female", "male"],
        };
        names.iter().map(|s| s.to_string()).collect()
    }
}

/// Options of [`load`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Isic2019Options {
    pub ground_truth: PathBuf,
    pub metadata: PathBuf,
    pub images_dir: PathBuf,
    pub grouping: SexGrouping,
    /// Record bad rows in `Dataset::skipped` instead of failing on the first.
    pub skip_bad_rows: bool,
}

impl Isic2019Options {
    /// Paper defaults (three groups), strict rows.
    pub fn new(
        ground_truth: impl Into<PathBuf>,
        metadata: impl Into<PathBuf>,
        images_dir: impl Into<PathBuf>,
    ) -> Self {
        Isic2019Options {
            ground_truth: ground_truth.into(),
            metadata: metadata.into(),
            images_dir: images_dir.into(),
            grouping: SexGrouping::default(),
            skip_bad_rows: false,
        }
    }

    /// The challenge layout under `root`: the two CSVs and `ISIC_2019_Training_Input/`.
    pub fn from_root(root: &Path) -> Self {
        Self::new(
            root.join("ISIC_2019_Training_GroundTruth.csv"),
            root.join("ISIC_2019_Training_Metadata.csv"),
            root.join("ISIC_2019_Training_Input"),
        )
    }
}

/// Loads the ground truth in file order, joins the metadata and checks that every kept row has an image.
pub fn load(opts: &Isic2019Options) -> Result<Dataset, DataError> {
    let table = Table::open(&opts.ground_truth)?;
    let id_col = table.column("image")?;
    let class_cols: Vec<Column> = table
        .headers()
        .iter()
        .enumerate()
        .filter(|&(i, h)| i != id_col.index && !h.is_empty())
        .map(|(index, name)| Column {
            index,
            name: name.clone(),
        })
        .collect();
    if class_cols.is_empty() {
        return Err(DataError::MissingColumn {
            file: opts.ground_truth.clone(),
            column: "<class columns>".into(),
            header: table.headers().join(","),
        });
    }
    let classes: Vec<String> = class_cols.iter().map(|c| c.name.clone()).collect();
    let groups = opts.grouping.group_names();

    let mut builder = Builder::new(
        opts.skip_bad_rows,
        Fields {
            id: id_col.name.clone(),
            label: classes.join(","),
            group: "sex".into(),
        },
        Some(&classes),
        Some(&groups),
    )?;
    let sex = read_sex(&opts.metadata, &mut builder)?;
    let index = ImageIndex::build(&opts.images_dir, IMAGE_EXTENSIONS)?;
    for row in table.rows() {
        let outcome =
            row.and_then(|row| parse_row(&row, &id_col, &class_cols, opts.grouping, &sex, &index));
        builder.accept(outcome)?;
    }
    builder.finish("isic2019", &opts.ground_truth)
}

/// Lowercased `sex` (or `gender`) per image id; duplicate ids are row errors.
fn read_sex(path: &Path, builder: &mut Builder) -> Result<HashMap<String, String>, DataError> {
    let table = Table::open(path)?;
    let id_col = table.column("image")?;
    let sex_col = table.column_any(&["sex", "gender"])?;
    let mut out: HashMap<String, String> = HashMap::new();
    let mut first_line: HashMap<String, usize> = HashMap::new();
    for row in table.rows() {
        let result = row.and_then(|row| {
            let id = row.get_nonempty(&id_col, "an image id")?;
            let sex = row.get(&sex_col)?.to_lowercase();
            if let Some(&first) = first_line.get(id) {
                return Err(DataError::DuplicateId {
                    file: path.to_path_buf(),
                    line: row.line,
                    field: id_col.name.clone(),
                    id: id.to_string(),
                    first_seen: format!("{}:{first}", path.display()),
                });
            }
            first_line.insert(id.to_string(), row.line);
            out.insert(id.to_string(), sex);
            Ok(())
        });
        if let Err(e) = result {
            builder.reject(e)?;
        }
    }
    Ok(out)
}

fn parse_row(
    row: &Row,
    id_col: &Column,
    class_cols: &[Column],
    grouping: SexGrouping,
    sex: &HashMap<String, String>,
    index: &ImageIndex,
) -> Result<Outcome, DataError> {
    let id = row.get_nonempty(id_col, "an image id")?;
    let label = one_hot_label(row, class_cols)?;
    let group = match (sex.get(id).map(String::as_str), grouping) {
        (Some(s @ ("female" | "male")), _) => s.to_string(),
        (_, SexGrouping::ThreeWithUnknown) => "unknown".to_string(),
        (found, SexGrouping::TwoDropUnknown) => {
            let why = match found {
                None => "no metadata row".to_string(),
                Some(s) => format!("sex `{s}`"),
            };
            return Ok(dropped(
                row.origin(),
                "sex",
                format!("unknown sex ({why}; dropped by the two-group policy)"),
            ));
        }
    };
    let image = find_image(index, id).ok_or_else(|| row.missing_image(id_col, id, index.dir()))?;
    Ok(Outcome::Keep(Pending {
        id: id.to_string(),
        image: image.to_path_buf(),
        label,
        group,
        origin: row.origin(),
    }))
}

/// The class of the single `1` column; every class value must be 0 or 1.
fn one_hot_label(row: &Row, class_cols: &[Column]) -> Result<String, DataError> {
    let mut positives = Vec::new();
    for col in class_cols {
        let raw = row.get(col)?;
        match raw.parse::<f64>() {
            Ok(1.0) => positives.push(col.name.as_str()),
            Ok(0.0) => {}
            _ => return Err(row.unparsable(col, raw, "0 or 1 (one-hot ground truth)")),
        }
    }
    match positives.as_slice() {
        [one] => Ok(one.to_string()),
        [] => Err(DataError::InvalidOneHot {
            file: row.file().to_path_buf(),
            line: row.line,
            field: class_cols
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(","),
            detail: "no class is 1 (expected exactly one)".into(),
        }),
        many => Err(DataError::InvalidOneHot {
            file: row.file().to_path_buf(),
            line: row.line,
            field: many.join(","),
            detail: format!("{} classes are 1 (expected exactly one)", many.len()),
        }),
    }
}

/// The image of `id` by stem; a `_downsampled` suffix may be present on the id but not on the file, or
/// the other way round (copies of the archive differ).
fn find_image<'a>(index: &'a ImageIndex, id: &str) -> Option<&'a Path> {
    index
        .get(id)
        .or_else(|| match id.strip_suffix(DOWNSAMPLED) {
            Some(base) => index.get(base),
            None => index.get(&format!("{id}{DOWNSAMPLED}")),
        })
}
