//! A generic dataset: a CSV with one row per image (`image,label,group` by default) and the images in a
//! directory. Used for the synthetic dataset and for held-out field-validation sets.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::builder::{Builder, Fields, Outcome, Pending};
use super::table::{Column, Row, Table};
use super::{DataError, Dataset};

/// Options of [`load`]; [`FolderCsvOptions::new`] gives the default column names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FolderCsvOptions {
    pub csv: PathBuf,
    /// Image paths in the CSV are relative to this directory (absolute paths are used as they are).
    pub images_dir: PathBuf,
    pub image_column: String,
    pub label_column: String,
    pub group_column: String,
    /// Explicit class list (a label outside it is an error); `None`: sorted unique labels.
    pub classes: Option<Vec<String>>,
    /// Explicit group list (a group outside it is an error); `None`: sorted unique groups.
    pub groups: Option<Vec<String>>,
    /// Record bad rows in `Dataset::skipped` instead of failing on the first.
    pub skip_bad_rows: bool,
}

impl FolderCsvOptions {
    /// Columns `image`, `label`, `group`; classes and groups from the data; strict rows.
    pub fn new(csv: impl Into<PathBuf>, images_dir: impl Into<PathBuf>) -> Self {
        FolderCsvOptions {
            csv: csv.into(),
            images_dir: images_dir.into(),
            image_column: "image".into(),
            label_column: "label".into(),
            group_column: "group".into(),
            classes: None,
            groups: None,
            skip_bad_rows: false,
        }
    }
}

/// Loads the CSV; the sample id is the image path as written in the CSV. The dataset is named after the
/// CSV's file stem.
pub fn load(opts: &FolderCsvOptions) -> Result<Dataset, DataError> {
    let table = Table::open(&opts.csv)?;
    let image_col = table.column(&opts.image_column)?;
    let label_col = table.column(&opts.label_column)?;
    let group_col = table.column(&opts.group_column)?;
    let mut builder = Builder::new(
        opts.skip_bad_rows,
        Fields {
            id: image_col.name.clone(),
            label: label_col.name.clone(),
            group: group_col.name.clone(),
        },
        opts.classes.as_deref(),
        opts.groups.as_deref(),
    )?;
    for row in table.rows() {
        let outcome = row.and_then(|row| parse_row(&row, &image_col, &label_col, &group_col, opts));
        builder.accept(outcome)?;
    }
    let name = opts.csv.file_stem().map_or_else(
        || "dataset".to_string(),
        |s| s.to_string_lossy().into_owned(),
    );
    builder.finish(&name, &opts.csv)
}

fn parse_row(
    row: &Row,
    image_col: &Column,
    label_col: &Column,
    group_col: &Column,
    opts: &FolderCsvOptions,
) -> Result<Outcome, DataError> {
    let rel = row.get_nonempty(image_col, "an image path")?;
    let label = row.get_nonempty(label_col, "a label")?;
    let group = row.get_nonempty(group_col, "a group")?;
    let image = opts.images_dir.join(rel);
    if !image.is_file() {
        return Err(row.missing_image(image_col, rel, &image));
    }
    Ok(Outcome::Keep(Pending {
        id: rel.to_string(),
        image,
        label: label.to_string(),
        group: group.to_string(),
        origin: row.origin(),
    }))
}
