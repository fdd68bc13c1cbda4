//! UTKFace (Bellam & Kim's dataset): no CSV, the attributes are in each file name,
//! `[age]_[gender]_[race]_[date&time].jpg` (gender 0 male, 1 female; race 0 White, 1 Black, 2 Asian,
//! 3 Indian, 4 Others), also in the aligned-and-cropped form `..._[date&time].jpg.chip.jpg`.
//!
//! The label and the group are each one of age (binned), gender or race, chosen by options. Default:
//! label = gender, group = race (the usual fairness reading of UTKFace: does a gender classifier work as
//! well for every race; Bellam & Kim give no setting). Samples are the images under the directory,
//! sorted by path; the id is the file stem; a sample's origin is its image file with line 0.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::builder::{Builder, Fields, Outcome, Pending};
use super::{DataError, Dataset, ImageIndex, Origin};

/// Image file extensions indexed.
pub const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png"];
/// Gender names by code.
pub const GENDERS: [&str; 2] = ["male", "female"];
/// Race names by code.
pub const RACES: [&str; 5] = ["White", "Black", "Asian", "Indian", "Others"];
/// Age bins (20 years wide, the last open): names, and the lower bound of each.
pub const AGE_BINS: [(&str, u32); 4] = [("0-19", 0), ("20-39", 20), ("40-59", 40), ("60+", 60)];
/// Ages above this are taken for typos (UTKFace's stated range is 0 to 116).
pub const MAX_AGE: u32 = 130;

/// An attribute of a UTKFace file name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "snake_case")]
pub enum UtkAttribute {
    /// Binned as [`AGE_BINS`].
    Age,
    Gender,
    Race,
}

impl UtkAttribute {
    pub fn as_str(self) -> &'static str {
        match self {
            UtkAttribute::Age => "age",
            UtkAttribute::Gender => "gender",
            UtkAttribute::Race => "race",
        }
    }

    /// The value names, index = class or group index.
    pub fn names(self) -> Vec<String> {
        let v: Vec<&str> = match self {
            UtkAttribute::Age => AGE_BINS.iter().map(|(n, _)| *n).collect(),
            UtkAttribute::Gender => GENDERS.to_vec(),
            UtkAttribute::Race => RACES.to_vec(),
        };
        v.into_iter().map(String::from).collect()
    }

    fn value(self, a: &UtkName) -> String {
        match self {
            UtkAttribute::Age => {
                let bin = AGE_BINS.iter().rev().find(|(_, lo)| a.age >= *lo);
                bin.map_or(AGE_BINS[0].0, |(n, _)| n).to_string()
            }
            UtkAttribute::Gender => GENDERS[usize::from(a.gender)].to_string(),
            UtkAttribute::Race => RACES[usize::from(a.race)].to_string(),
        }
    }
}

/// The attributes in one file name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UtkName {
    pub age: u32,
    pub gender: u8,
    pub race: u8,
}

/// Parses `[age]_[gender]_[race]_[date&time]...`; the error is `(field, value, expected)`.
pub fn parse_name(file_name: &str) -> Result<UtkName, (&'static str, String, String)> {
    let parts: Vec<&str> = file_name.splitn(4, '_').collect();
    if parts.len() < 4 || parts[3].is_empty() {
        return Err((
            "name",
            file_name.to_string(),
            "[age]_[gender]_[race]_[date&time].jpg (four fields separated by `_`)".into(),
        ));
    }
    let num = |i: usize, field: &'static str, max: u32, expected: &str| {
        parts[i]
            .parse::<u32>()
            .ok()
            .filter(|v| *v <= max && !parts[i].starts_with('+'))
            .ok_or_else(|| (field, parts[i].to_string(), expected.to_string()))
    };
    let age = num(0, "age", MAX_AGE, "an age in years, 0..=130")?;
    let gender = num(1, "gender", 1, "0 (male) or 1 (female)")? as u8;
    let race = num(2, "race", 4, "0..=4 (White, Black, Asian, Indian, Others)")? as u8;
    Ok(UtkName { age, gender, race })
}

/// Options of [`load`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UtkfaceOptions {
    pub images_dir: PathBuf,
    pub label: UtkAttribute,
    pub group: UtkAttribute,
    /// Record malformed file names in `Dataset::skipped` instead of failing on the first.
    pub skip_bad_rows: bool,
}

impl UtkfaceOptions {
    /// Label gender, group race, strict names.
    pub fn new(images_dir: impl Into<PathBuf>) -> Self {
        UtkfaceOptions {
            images_dir: images_dir.into(),
            label: UtkAttribute::Gender,
            group: UtkAttribute::Race,
            skip_bad_rows: false,
        }
    }
}

/// Lists the images under `images_dir` and parses each name. Label and group must differ.
pub fn load(opts: &UtkfaceOptions) -> Result<Dataset, DataError> {
    if opts.label == opts.group {
        return Err(DataError::Config(format!(
            "UTKFace: the label and the group are both `{}`; choose two different attributes",
            opts.label.as_str()
        )));
    }
    let index = ImageIndex::build(&opts.images_dir, IMAGE_EXTENSIONS)?;
    let classes = opts.label.names();
    let groups = opts.group.names();
    let fields = Fields {
        id: "name".into(),
        label: opts.label.as_str().into(),
        group: opts.group.as_str().into(),
    };
    let mut builder = Builder::new(opts.skip_bad_rows, fields, Some(&classes), Some(&groups))?;
    for path in index.sorted_paths() {
        builder.accept(sample(path, opts))?;
    }
    builder.finish("utkface", &opts.images_dir)
}

fn sample(path: &Path, opts: &UtkfaceOptions) -> Result<Outcome, DataError> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let stem = path.file_stem().and_then(|n| n.to_str()).unwrap_or("");
    let attrs = parse_name(name).map_err(|(field, value, expected)| DataError::FileName {
        file: path.to_path_buf(),
        field: field.into(),
        value,
        expected,
    })?;
    Ok(Outcome::Keep(Pending {
        id: stem.to_string(),
        image: path.to_path_buf(),
        label: opts.label.value(&attrs),
        group: opts.group.value(&attrs),
        origin: Origin {
            file: path.to_path_buf(),
            line: 0,
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_or_say_which_field_is_wrong() {
        let ok = |s| parse_name(s).unwrap();
        assert_eq!(
            ok("26_1_2_20170116174525125.jpg"),
            UtkName {
                age: 26,
                gender: 1,
                race: 2
            }
        );
        assert_eq!(ok("1_0_0_20161219140623097.jpg.chip.jpg").age, 1);
        assert_eq!(ok("116_0_4_x_y.png").race, 4);
        let field = |s| parse_name(s).unwrap_err().0;
        // The real archive has three names without a race field.
        assert_eq!(field("39_1_20170116174525125.jpg.chip.jpg"), "name");
        assert_eq!(field("61_1_20170109142408075.jpg"), "name");
        assert_eq!(field("a_1_2_2017.jpg"), "age");
        assert_eq!(field("131_1_2_2017.jpg"), "age");
        assert_eq!(field("+3_1_2_2017.jpg"), "age");
        assert_eq!(field("30_2_2_2017.jpg"), "gender");
        assert_eq!(field("30_1_5_2017.jpg"), "race");
        assert_eq!(field("30_1_-1_2017.jpg"), "race");
        assert_eq!(field("30_1_2_"), "name");
        assert_eq!(field(""), "name");
    }

    #[test]
    fn age_bins() {
        let bin = |age| {
            UtkAttribute::Age.value(&UtkName {
                age,
                gender: 0,
                race: 0,
            })
        };
        assert_eq!(
            [
                bin(0),
                bin(19),
                bin(20),
                bin(39),
                bin(40),
                bin(59),
                bin(60),
                bin(116)
            ],
            ["0-19", "0-19", "20-39", "20-39", "40-59", "40-59", "60+", "60+"]
        );
    }
}
