//! Train/val/test splits: stratified by (label, group) from a seed, or from official id lists; saved as
//! `id,split` CSV (`split.csv` of a run) and validated against the dataset when loaded.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::table::Table;
use super::{DataError, Dataset, SkipReason, Skipped};
use fq_runtime::atomic::write_atomic;

/// One of the three splits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SplitName {
    Train,
    Val,
    Test,
}

impl SplitName {
    pub const ALL: [SplitName; 3] = [SplitName::Train, SplitName::Val, SplitName::Test];

    pub fn as_str(self) -> &'static str {
        match self {
            SplitName::Train => "train",
            SplitName::Val => "val",
            SplitName::Test => "test",
        }
    }

    /// `train`, `val` (also `valid`, `validation`) or `test`, case-insensitive.
    pub fn parse(s: &str) -> Option<SplitName> {
        match s.to_ascii_lowercase().as_str() {
            "train" => Some(SplitName::Train),
            "val" | "valid" | "validation" => Some(SplitName::Val),
            "test" => Some(SplitName::Test),
            _ => None,
        }
    }
}

impl fmt::Display for SplitName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Fractions of each stratum that go to train / val / test.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SplitFractions {
    pub train: f64,
    pub val: f64,
    pub test: f64,
}

impl Default for SplitFractions {
    fn default() -> Self {
        SplitFractions {
            train: 0.7,
            val: 0.1,
            test: 0.2,
        }
    }
}

impl SplitFractions {
    fn as_array(&self) -> [f64; 3] {
        [self.train, self.val, self.test]
    }

    /// Each fraction finite and in [0, 1], summing to 1 (within 1e-6).
    pub fn validate(&self) -> Result<(), DataError> {
        let f = self.as_array();
        let sum: f64 = f.iter().sum();
        if f.iter().any(|x| !x.is_finite() || *x < 0.0 || *x > 1.0) || (sum - 1.0).abs() > 1e-6 {
            return Err(DataError::Config(format!(
                "split fractions must be in [0, 1] and sum to 1, got train {} val {} test {}",
                self.train, self.val, self.test
            )));
        }
        Ok(())
    }
}

/// Sample indices (into `Dataset::samples`, ascending) of each split. A sample may be in none.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Split {
    pub train: Vec<usize>,
    pub val: Vec<usize>,
    pub test: Vec<usize>,
}

/// A list of ids read from one column of a CSV, with the line of each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdList {
    pub file: PathBuf,
    pub field: String,
    /// `(line, id)`; line 1 is the header.
    pub ids: Vec<(usize, String)>,
}

/// Reads the `column` of a CSV as an id list (empty values are errors).
pub fn read_id_list(path: &Path, column: &str) -> Result<IdList, DataError> {
    let table = Table::open(path)?;
    let col = table.column(column)?;
    let mut ids = Vec::new();
    for row in table.rows() {
        let row = row?;
        ids.push((row.line, row.get_nonempty(&col, "an id")?.to_string()));
    }
    Ok(IdList {
        file: path.to_path_buf(),
        field: col.name,
        ids,
    })
}

impl Split {
    pub fn get(&self, name: SplitName) -> &[usize] {
        match name {
            SplitName::Train => &self.train,
            SplitName::Val => &self.val,
            SplitName::Test => &self.test,
        }
    }

    fn get_mut(&mut self, name: SplitName) -> &mut Vec<usize> {
        match name {
            SplitName::Train => &mut self.train,
            SplitName::Val => &mut self.val,
            SplitName::Test => &mut self.test,
        }
    }

    /// The split of each of `n` samples; an error if an index is out of range or in two splits.
    pub fn assignment(&self, n: usize) -> Result<Vec<Option<SplitName>>, DataError> {
        let mut out = vec![None; n];
        for name in SplitName::ALL {
            for &i in self.get(name) {
                match out.get_mut(i) {
                    None => {
                        return Err(DataError::Config(format!(
                            "split {name} has sample index {i}, the dataset has {n} samples"
                        )))
                    }
                    Some(Some(other)) => {
                        return Err(DataError::Config(format!(
                            "sample index {i} is in both {other} and {name}"
                        )))
                    }
                    Some(slot) => *slot = Some(name),
                }
            }
        }
        Ok(out)
    }

    /// Stratified split: the samples of each (label, group) stratum are shuffled with one ChaCha8 stream
    /// seeded by `seed` (strata in sorted order) and cut by the fractions (largest remainder). A stratum of
    /// at least 3 samples gives at least one sample to every split with a non-zero fraction; smaller strata
    /// follow the rounding (in practice they go to train).
    pub fn stratified(
        dataset: &Dataset,
        fractions: &SplitFractions,
        seed: u64,
    ) -> Result<Split, DataError> {
        fractions.validate()?;
        let mut strata: BTreeMap<(usize, usize), Vec<usize>> = BTreeMap::new();
        for (i, s) in dataset.samples.iter().enumerate() {
            strata.entry((s.label, s.group)).or_default().push(i);
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut split = Split::default();
        for members in strata.values_mut() {
            members.shuffle(&mut rng);
            let counts = allocate(members.len(), fractions.as_array());
            let mut rest = members.as_slice();
            for (name, count) in SplitName::ALL.into_iter().zip(counts) {
                let (take, tail) = rest.split_at(count.min(rest.len()));
                split.get_mut(name).extend_from_slice(take);
                rest = tail;
            }
        }
        split.sort();
        Ok(split)
    }

    /// A split from official id lists (e.g. Fitzpatrick17k `train_score.csv` -> train, `all_val.csv` ->
    /// test). Ids that are not in the dataset (such as rows dropped for an unknown skin type) and repeats
    /// within one list are returned as skipped; an id listed for two different splits is an error.
    pub fn from_id_lists(
        dataset: &Dataset,
        lists: &[(SplitName, &IdList)],
    ) -> Result<(Split, Vec<Skipped>), DataError> {
        let index = id_index(dataset);
        let mut first: HashMap<usize, (SplitName, &Path, usize)> = HashMap::new();
        let mut split = Split::default();
        let mut skipped = Vec::new();
        for &(name, list) in lists {
            for (line, id) in &list.ids {
                let skip = |reason, message| Skipped {
                    file: list.file.clone(),
                    line: *line,
                    field: list.field.clone(),
                    reason,
                    message,
                };
                let Some(&i) = index.get(id.as_str()) else {
                    skipped.push(skip(
                        SkipReason::UnknownId,
                        format!("id `{id}` is not in dataset `{}`", dataset.name),
                    ));
                    continue;
                };
                match first.get(&i) {
                    Some(&(prev, file, prev_line)) if prev == name => skipped.push(skip(
                        SkipReason::DuplicateId,
                        format!(
                            "id `{id}` repeated (first at {}:{prev_line})",
                            file.display()
                        ),
                    )),
                    Some(&(_, file, prev_line)) => {
                        return Err(DataError::DuplicateId {
                            file: list.file.clone(),
                            line: *line,
                            field: list.field.clone(),
                            id: id.clone(),
                            first_seen: format!("{}:{prev_line}", file.display()),
                        })
                    }
                    None => {
                        first.insert(i, (name, &list.file, *line));
                        split.get_mut(name).push(i);
                    }
                }
            }
        }
        split.sort();
        Ok((split, skipped))
    }

    /// Writes `id,split` for every assigned sample, in dataset order, atomically.
    pub fn save_csv(&self, path: &Path, dataset: &Dataset) -> Result<(), DataError> {
        let assignment = self.assignment(dataset.len())?;
        let mut w = csv::Writer::from_writer(Vec::new());
        let write_err = |e: csv::Error| DataError::Config(format!("cannot encode split CSV: {e}"));
        w.write_record(["id", "split"]).map_err(write_err)?;
        for (s, a) in dataset.samples.iter().zip(&assignment) {
            if let Some(name) = a {
                w.write_record([s.id.as_str(), name.as_str()])
                    .map_err(write_err)?;
            }
        }
        let bytes = w
            .into_inner()
            .map_err(|e| DataError::Config(format!("cannot encode split CSV: {e}")))?;
        write_atomic(path, &bytes).map_err(|e| DataError::io(path, e))
    }

    /// Reads an `id,split` CSV. Every id must be a sample of `dataset` (an unknown id, an unknown split
    /// name or a repeated id is an error naming its line); samples not in the file are in no split.
    pub fn load_csv(path: &Path, dataset: &Dataset) -> Result<Split, DataError> {
        let table = Table::open(path)?;
        let id_col = table.column("id")?;
        let split_col = table.column("split")?;
        let index = id_index(dataset);
        let mut seen: HashMap<usize, usize> = HashMap::new();
        let mut split = Split::default();
        for row in table.rows() {
            let row = row?;
            let id = row.get_nonempty(&id_col, "a sample id")?;
            let raw = row.get(&split_col)?;
            let name = SplitName::parse(raw)
                .ok_or_else(|| row.unparsable(&split_col, raw, "train, val or test"))?;
            let Some(&i) = index.get(id) else {
                return Err(DataError::UnknownId {
                    file: path.to_path_buf(),
                    line: row.line,
                    field: id_col.name.clone(),
                    id: id.to_string(),
                    dataset: dataset.name.clone(),
                });
            };
            if let Some(first) = seen.insert(i, row.line) {
                return Err(DataError::DuplicateId {
                    file: path.to_path_buf(),
                    line: row.line,
                    field: id_col.name.clone(),
                    id: id.to_string(),
                    first_seen: format!("{}:{first}", path.display()),
                });
            }
            split.get_mut(name).push(i);
        }
        split.sort();
        Ok(split)
    }

    fn sort(&mut self) {
        for name in SplitName::ALL {
            self.get_mut(name).sort_unstable();
        }
    }
}

fn id_index(dataset: &Dataset) -> HashMap<&str, usize> {
    dataset
        .samples
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.as_str(), i))
        .collect()
}

/// Splits `n` by the (normalized) fractions with the largest-remainder method (ties to the earlier split),
/// then, for `n >= 3`, moves one sample from the largest split to any split with a positive fraction and
/// none yet.
fn allocate(n: usize, fractions: [f64; 3]) -> [usize; 3] {
    let total: f64 = fractions.iter().sum();
    let ideal = fractions.map(|f| f / total * n as f64);
    let mut counts = ideal.map(|x| x.floor() as usize);
    let mut order = [0usize, 1, 2];
    order.sort_by(|&a, &b| {
        // Remainders are compared on a 1e-9 grid, so that 0.7 * 2 = 1.4 (remainder 0.3999...) ties
        // with 0.2 * 2 = 0.4.
        let key = |i: usize| (ideal[i].fract() * 1e9).round() as i64;
        key(b).cmp(&key(a)).then(a.cmp(&b))
    });
    let assigned: usize = counts.iter().sum();
    for &i in order.iter().cycle().take(n.saturating_sub(assigned)) {
        counts[i] += 1;
    }
    if n >= 3 {
        for i in 0..3 {
            if fractions[i] > 0.0 && counts[i] == 0 {
                let largest = (0..3).max_by_key(|&j| (counts[j], 3 - j)).unwrap_or(0);
                counts[largest] -= 1;
                counts[i] += 1;
            }
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::{Origin, Sample};

    fn dataset(strata: &[(usize, usize, usize)]) -> Dataset {
        let mut samples = Vec::new();
        for &(label, group, count) in strata {
            for _ in 0..count {
                let id = format!("s{}", samples.len());
                samples.push(Sample {
                    image: PathBuf::from(format!("{id}.png")),
                    id,
                    label,
                    group,
                    origin: Origin {
                        file: "x.csv".into(),
                        line: samples.len() + 2,
                    },
                });
            }
        }
        Dataset {
            name: "t".into(),
            samples,
            classes: vec!["a".into(), "b".into(), "c".into()],
            groups: vec!["g0".into(), "g1".into()],
            skipped: vec![],
        }
    }

    #[test]
    fn allocation() {
        let f = [0.7, 0.1, 0.2];
        assert_eq!(allocate(10, f), [7, 1, 2]);
        assert_eq!(allocate(3, f), [1, 1, 1]);
        assert_eq!(allocate(4, f), [2, 1, 1]);
        assert_eq!(allocate(2, f), [2, 0, 0]);
        assert_eq!(allocate(1, f), [1, 0, 0]);
        assert_eq!(allocate(0, f), [0, 0, 0]);
        assert_eq!(allocate(5, [0.8, 0.0, 0.2]), [4, 0, 1]);
        for n in 0..200 {
            assert_eq!(allocate(n, f).iter().sum::<usize>(), n);
        }
    }

    #[test]
    fn stratified_covers_every_split_per_stratum_and_is_deterministic() {
        let d = dataset(&[(0, 0, 3), (0, 1, 50), (1, 0, 7), (2, 1, 2), (1, 1, 1)]);
        let s = Split::stratified(&d, &SplitFractions::default(), 42).unwrap();
        let a = s.assignment(d.len()).unwrap();
        assert!(a.iter().all(Option::is_some), "every sample is assigned");
        for (label, group, n) in [(0, 0, 3), (0, 1, 50), (1, 0, 7)] {
            for name in SplitName::ALL {
                let k = s
                    .get(name)
                    .iter()
                    .filter(|&&i| d.samples[i].label == label && d.samples[i].group == group)
                    .count();
                assert!(k >= 1, "stratum ({label},{group}) of {n} has no {name}");
            }
        }
        // Stratum of 50: 35 / 5 / 10.
        let in_big = |name| {
            s.get(name)
                .iter()
                .filter(|&&i| d.samples[i].label == 0 && d.samples[i].group == 1)
                .count()
        };
        assert_eq!(
            [
                in_big(SplitName::Train),
                in_big(SplitName::Val),
                in_big(SplitName::Test)
            ],
            [35, 5, 10]
        );
        assert_eq!(
            s,
            Split::stratified(&d, &SplitFractions::default(), 42).unwrap()
        );
        assert_ne!(
            s,
            Split::stratified(&d, &SplitFractions::default(), 43).unwrap()
        );
    }

    #[test]
    fn bad_fractions_are_rejected() {
        let d = dataset(&[(0, 0, 3)]);
        for f in [
            SplitFractions {
                train: 0.7,
                val: 0.1,
                test: 0.1,
            },
            SplitFractions {
                train: 1.2,
                val: -0.1,
                test: -0.1,
            },
            SplitFractions {
                train: f64::NAN,
                val: 0.0,
                test: 0.0,
            },
        ] {
            assert!(matches!(
                Split::stratified(&d, &f, 1),
                Err(DataError::Config(_))
            ));
        }
    }

    #[test]
    fn save_and_load_round_trip() {
        let d = dataset(&[(0, 0, 10), (1, 1, 10)]);
        let s = Split::stratified(&d, &SplitFractions::default(), 7).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/split.csv");
        s.save_csv(&path, &d).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("id,split\n"));
        assert_eq!(text.lines().count(), 21);
        assert_eq!(Split::load_csv(&path, &d).unwrap(), s);
    }

    #[test]
    fn load_names_the_line_of_an_unknown_id() {
        let d = dataset(&[(0, 0, 3)]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("split.csv");
        std::fs::write(&path, "id,split\ns0,train\nnope,test\n").unwrap();
        let err = Split::load_csv(&path, &d).unwrap_err().to_string();
        assert!(
            err.contains(&format!("{}:3: field `id`", path.display())),
            "{err}"
        );
        assert!(err.contains("nope"), "{err}");

        std::fs::write(&path, "id,split\ns0,train\ns1,holdout\n").unwrap();
        let err = Split::load_csv(&path, &d).unwrap_err().to_string();
        assert!(err.contains(":3: field `split`"), "{err}");

        std::fs::write(&path, "id,split\ns0,train\ns0,test\n").unwrap();
        let err = Split::load_csv(&path, &d).unwrap_err().to_string();
        assert!(
            err.contains(":3: field `id`") && err.contains("duplicate"),
            "{err}"
        );
    }

    #[test]
    fn from_id_lists_assigns_and_reports_unknown_ids() {
        let d = dataset(&[(0, 0, 4)]);
        let dir = tempfile::tempdir().unwrap();
        let train = dir.path().join("train_score.csv");
        let test = dir.path().join("all_val.csv");
        std::fs::write(&train, "md5hash,other\ns0,x\ns1,y\nzzz,q\ns1,y\n").unwrap();
        std::fs::write(&test, "md5hash\ns3\n").unwrap();
        let tl = read_id_list(&train, "md5hash").unwrap();
        let vl = read_id_list(&test, "md5hash").unwrap();
        let (s, skipped) =
            Split::from_id_lists(&d, &[(SplitName::Train, &tl), (SplitName::Test, &vl)]).unwrap();
        assert_eq!(s.train, vec![0, 1]);
        assert_eq!(s.test, vec![3]);
        assert!(s.val.is_empty());
        let reasons: Vec<_> = skipped.iter().map(|k| (k.line, k.reason)).collect();
        assert_eq!(
            reasons,
            vec![(4, SkipReason::UnknownId), (5, SkipReason::DuplicateId)]
        );

        std::fs::write(&test, "md5hash\ns3\ns0\n").unwrap();
        let vl = read_id_list(&test, "md5hash").unwrap();
        let err = Split::from_id_lists(&d, &[(SplitName::Train, &tl), (SplitName::Test, &vl)])
            .unwrap_err()
            .to_string();
        assert!(err.contains("all_val.csv:3: field `md5hash`"), "{err}");
    }
}
