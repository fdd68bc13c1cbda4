//! The held-out set: read with the runtime's loader for its format, optionally narrowed to one
//! split of a run's `split.csv`.

use anyhow::{bail, Context, Result};
use fq_eval::dataset::{Dataset, Split, SplitName};

use crate::args::DataArgs;

/// Loads the data set the arguments describe.
pub fn load(a: &DataArgs) -> Result<Dataset> {
    let ds = a.source.load()?;
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
