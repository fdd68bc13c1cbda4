//! The held-out set: read with the runtime's loader for its format, optionally narrowed to one
//! split of a run's `split.csv`.

use anyhow::{bail, Context, Result};
use fq_runtime::dataset::{self, Dataset, Split, SplitName};

use crate::args::{DataArgs, DatasetKind};

/// Loads the data set the arguments describe.
pub fn load(a: &DataArgs) -> Result<Dataset> {
    let need_csv = || {
        a.csv
            .clone()
            .with_context(|| format!("--csv is required for --dataset {:?}", a.dataset))
    };
    let ds = match a.dataset {
        DatasetKind::Fitzpatrick17k => {
            use dataset::fitzpatrick17k::{
                load, Fitzpatrick17kOptions, LabelGranularity, SkinGrouping, UnknownSkinType,
            };
            let mut o = Fitzpatrick17kOptions::new(need_csv()?, a.images.clone());
            o.grouping = match a.grouping.as_str() {
                "binary" => SkinGrouping::Binary,
                "six" => SkinGrouping::SixTypes,
                g => bail!("--grouping must be `binary` or `six`, got `{g}`"),
            };
            o.labels = match a.label_column.as_deref().unwrap_or("label") {
                "label" => LabelGranularity::Fine,
                "nine" | "nine_partition_label" => LabelGranularity::NinePartition,
                "three" | "three_partition_label" => LabelGranularity::ThreePartition,
                l => bail!("--label-column must be `label`, `nine` or `three`, got `{l}`"),
            };
            o.unknown = if a.keep_unknown {
                UnknownSkinType::KeepAsGroup
            } else {
                UnknownSkinType::Drop
            };
            o.skip_bad_rows = a.skip_bad_rows;
            load(&o)?
        }
        DatasetKind::Isic2019 => {
            use dataset::isic2019::{load, Isic2019Options, SexGrouping};
            let gt = a
                .isic_ground_truth
                .clone()
                .context("--isic-ground-truth is required for --dataset isic2019")?;
            let meta = a
                .isic_metadata
                .clone()
                .context("--isic-metadata is required for --dataset isic2019")?;
            let mut o = Isic2019Options::new(gt, meta, a.images.clone());
            o.grouping = match a.isic_groups {
                3 => SexGrouping::ThreeWithUnknown,
                2 => SexGrouping::TwoDropUnknown,
                g => bail!("--isic-groups must be 2 or 3, got {g}"),
            };
            o.skip_bad_rows = a.skip_bad_rows;
            load(&o)?
        }
        DatasetKind::Folder => {
            use dataset::folder::{load, FolderCsvOptions};
            let mut o = FolderCsvOptions::new(need_csv()?, a.images.clone());
            o.image_column = a.image_column.clone();
            o.label_column = a.label_column.clone().unwrap_or_else(|| "label".into());
            o.group_column = a.group_column.clone();
            o.skip_bad_rows = a.skip_bad_rows;
            load(&o)?
        }
    };
    let Some(split_csv) = &a.split_csv else {
        return Ok(ds);
    };
    let name = SplitName::parse(&a.split)
        .with_context(|| format!("--split must be train, val or test, got `{}`", a.split))?;
    let split = Split::load_csv(split_csv, &ds)?;
    let subset = ds.subset(split.get(name));
    if subset.is_empty() {
        bail!(
            "{}: split `{}` has no samples of {}",
            split_csv.display(),
            a.split,
            ds.name
        );
    }
    Ok(Dataset {
        skipped: ds.skipped,
        ..subset
    })
}
