//! Assembly of a [`Dataset`] from parsed rows, shared by the loaders: the skip-or-fail policy for bad rows,
//! duplicate ids, label/group lookup in given lists, and sorted-unique class/group lists otherwise.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use super::{DataError, Dataset, Origin, Sample, SkipReason, Skipped};

/// A row that passed the loader's own checks; label and group are still strings.
pub(crate) struct Pending {
    pub id: String,
    pub image: PathBuf,
    pub label: String,
    pub group: String,
    pub origin: Origin,
}

/// What a loader made of one row.
pub(crate) enum Outcome {
    Keep(Pending),
    /// Left out by policy (not an error); recorded in `skipped`.
    Drop(Skipped),
}

/// Names of the source fields, for error messages.
pub(crate) struct Fields {
    pub id: String,
    pub label: String,
    pub group: String,
}

pub(crate) struct Builder {
    skip_bad_rows: bool,
    fields: Fields,
    classes: Option<Lookup>,
    groups: Option<Lookup>,
    seen: HashMap<String, Origin>,
    pending: Vec<Pending>,
    skipped: Vec<Skipped>,
}

/// A given list of names with its index.
struct Lookup {
    names: Vec<String>,
    index: HashMap<String, usize>,
}

impl Lookup {
    fn new(names: &[String], what: &str) -> Result<Lookup, DataError> {
        let mut index = HashMap::new();
        for (i, n) in names.iter().enumerate() {
            if index.insert(n.clone(), i).is_some() {
                return Err(DataError::Config(format!("{what} lists `{n}` twice")));
            }
        }
        if names.is_empty() {
            return Err(DataError::Config(format!("{what} is empty")));
        }
        Ok(Lookup {
            names: names.to_vec(),
            index,
        })
    }
}

impl Builder {
    /// `classes` / `groups`: given lists (a value outside them is a row error) or `None` (sorted unique
    /// values of the kept rows).
    pub fn new(
        skip_bad_rows: bool,
        fields: Fields,
        classes: Option<&[String]>,
        groups: Option<&[String]>,
    ) -> Result<Builder, DataError> {
        Ok(Builder {
            skip_bad_rows,
            fields,
            classes: classes.map(|c| Lookup::new(c, "class list")).transpose()?,
            groups: groups.map(|g| Lookup::new(g, "group list")).transpose()?,
            seen: HashMap::new(),
            pending: Vec::new(),
            skipped: Vec::new(),
        })
    }

    /// Takes a loader's verdict on one row: keeps it, records a drop, or handles a row error (recorded when
    /// skipping bad rows, returned otherwise).
    pub fn accept(&mut self, outcome: Result<Outcome, DataError>) -> Result<(), DataError> {
        let result = outcome.and_then(|o| match o {
            Outcome::Keep(p) => self.keep(p),
            Outcome::Drop(s) => {
                self.skipped.push(s);
                Ok(())
            }
        });
        match result {
            Ok(()) => Ok(()),
            Err(e) => self.reject(e),
        }
    }

    /// Records a row error when skipping bad rows; returns it otherwise (and always for file-level errors).
    pub fn reject(&mut self, err: DataError) -> Result<(), DataError> {
        match (self.skip_bad_rows, Skipped::from_error(&err)) {
            (true, Some(s)) => {
                self.skipped.push(s);
                Ok(())
            }
            _ => Err(err),
        }
    }

    fn keep(&mut self, p: Pending) -> Result<(), DataError> {
        if let Some(first) = self.seen.get(&p.id) {
            return Err(DataError::DuplicateId {
                file: p.origin.file.clone(),
                line: p.origin.line,
                field: self.fields.id.clone(),
                id: p.id,
                first_seen: format!("{}:{}", first.file.display(), first.line),
            });
        }
        for (lookup, value, field, set) in [
            (&self.classes, &p.label, &self.fields.label, "class list"),
            (&self.groups, &p.group, &self.fields.group, "group list"),
        ] {
            if let Some(l) = lookup {
                if !l.index.contains_key(value) {
                    return Err(DataError::OutsideLabelSet {
                        file: p.origin.file.clone(),
                        line: p.origin.line,
                        field: field.clone(),
                        value: value.clone(),
                        set: format!("{set} ({} values)", l.names.len()),
                    });
                }
            }
        }
        self.seen.insert(p.id.clone(), p.origin.clone());
        self.pending.push(p);
        Ok(())
    }

    /// The dataset; an error if no row was kept. `file` is the main CSV (for the empty-dataset message).
    pub fn finish(self, name: &str, file: &Path) -> Result<Dataset, DataError> {
        if self.pending.is_empty() {
            return Err(DataError::EmptyDataset {
                file: file.to_path_buf(),
                name: name.to_string(),
                skipped: self.skipped.len(),
            });
        }
        let classes = self.classes.map_or_else(
            || sorted_unique(self.pending.iter().map(|p| &p.label)),
            |l| l.names,
        );
        let groups = self.groups.map_or_else(
            || sorted_unique(self.pending.iter().map(|p| &p.group)),
            |l| l.names,
        );
        let class_index = position_map(&classes);
        let group_index = position_map(&groups);
        let samples = self
            .pending
            .into_iter()
            .map(|p| Sample {
                label: class_index[p.label.as_str()],
                group: group_index[p.group.as_str()],
                id: p.id,
                image: p.image,
                origin: p.origin,
            })
            .collect();
        Ok(Dataset {
            name: name.to_string(),
            samples,
            classes,
            groups,
            skipped: self.skipped,
        })
    }
}

/// A policy drop of the row at `origin`.
pub(crate) fn dropped(origin: Origin, field: &str, message: String) -> Outcome {
    Outcome::Drop(Skipped {
        file: origin.file,
        line: origin.line,
        field: field.to_string(),
        reason: SkipReason::UnknownGroup,
        message,
    })
}

fn sorted_unique<'a>(values: impl Iterator<Item = &'a String>) -> Vec<String> {
    values
        .collect::<BTreeSet<_>>()
        .into_iter()
        .cloned()
        .collect()
}

fn position_map(names: &[String]) -> HashMap<&str, usize> {
    names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect()
}
