//! The one error type of the dataset loaders. Every message names the file, and for row-level problems also
//! the line (1-based, the header is line 1) and the field, so a user can fix the CSV without a debugger.

use std::io;
use std::path::PathBuf;

use fq_runtime::preprocess::{ConfigError, DecodeError};

use super::SkipReason;

/// A problem with dataset input (CSV, image files, split files) or with loader options.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file or directory could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A required column is absent from the header (line 1).
    #[error("{}:1: field `{column}`: missing column (header: {header})", file.display())]
    MissingColumn {
        file: PathBuf,
        column: String,
        header: String,
    },
    /// The CSV row itself is broken (invalid UTF-8, too few fields).
    #[error("{}:{line}: field `{field}`: malformed row: {message}", file.display())]
    MalformedRow {
        file: PathBuf,
        line: usize,
        field: String,
        message: String,
    },
    /// A row has more or fewer fields than the header: its values cannot be trusted to be in their
    /// columns.
    #[error("{}:{line}: row has {found} fields, the header has {expected}", file.display())]
    FieldCount {
        file: PathBuf,
        line: usize,
        expected: usize,
        found: usize,
    },
    /// A value does not parse as what the field holds.
    #[error("{}:{line}: field `{field}`: cannot parse `{value}`: expected {expected}", file.display())]
    Unparsable {
        file: PathBuf,
        line: usize,
        field: String,
        value: String,
        expected: String,
    },
    /// A dataset whose attributes are in the file names (UTKFace): this file's name does not parse.
    /// (No CSV line: the location's line is 0.)
    #[error("{}: file name field `{field}`: cannot parse `{value}`: expected {expected}", file.display())]
    FileName {
        file: PathBuf,
        field: String,
        value: String,
        expected: String,
    },
    /// No image file exists for the row.
    #[error("{}:{line}: field `{field}`: no image for `{id}` in {}", file.display(), searched.display())]
    MissingImage {
        file: PathBuf,
        line: usize,
        field: String,
        id: String,
        searched: PathBuf,
    },
    /// The row's image exists but cannot be decoded (reported when images are loaded, not at CSV load).
    #[error("{}:{line}: image of this row cannot be read or decoded: {source}", file.display())]
    CorruptImage {
        file: PathBuf,
        line: usize,
        image: PathBuf,
        /// Boxed: the image crate's error is large and this variant is rare.
        #[source]
        source: Box<DecodeError>,
    },
    /// A label (or group) is not in the explicitly given list.
    #[error("{}:{line}: field `{field}`: `{value}` is not in the given {set}", file.display())]
    OutsideLabelSet {
        file: PathBuf,
        line: usize,
        field: String,
        value: String,
        set: String,
    },
    /// The same id appears twice.
    #[error("{}:{line}: field `{field}`: duplicate id `{id}` (first seen at {first_seen})", file.display())]
    DuplicateId {
        file: PathBuf,
        line: usize,
        field: String,
        id: String,
        first_seen: String,
    },
    /// A one-hot ground-truth row has no or several positive columns.
    #[error("{}:{line}: field `{field}`: {detail}", file.display())]
    InvalidOneHot {
        file: PathBuf,
        line: usize,
        field: String,
        detail: String,
    },
    /// An id in a split file is not a sample of the dataset.
    #[error("{}:{line}: field `{field}`: id `{id}` is not in dataset `{dataset}`", file.display())]
    UnknownId {
        file: PathBuf,
        line: usize,
        field: String,
        id: String,
        dataset: String,
    },
    /// Nothing usable is left after filtering.
    #[error("{}: dataset `{name}` is empty ({skipped} rows skipped or dropped)", file.display())]
    EmptyDataset {
        file: PathBuf,
        name: String,
        skipped: usize,
    },
    /// Loader or split options are inconsistent.
    #[error("invalid configuration: {0}")]
    Config(String),
}

/// A bad preprocessing configuration keeps its message (`invalid configuration: …`).
impl From<ConfigError> for DataError {
    fn from(e: ConfigError) -> Self {
        DataError::Config(e.0)
    }
}

impl DataError {
    /// The skip reason of a row-level error; `None` for errors that concern a whole file or the options
    /// and therefore cannot be skipped.
    pub fn skip_reason(&self) -> Option<SkipReason> {
        Some(match self {
            DataError::MalformedRow { .. } => SkipReason::MalformedRow,
            DataError::FieldCount { .. } => SkipReason::FieldCount,
            DataError::Unparsable { .. } | DataError::FileName { .. } => SkipReason::Unparsable,
            DataError::MissingImage { .. } => SkipReason::MissingImage,
            DataError::OutsideLabelSet { .. } => SkipReason::OutsideLabelSet,
            DataError::DuplicateId { .. } => SkipReason::DuplicateId,
            DataError::InvalidOneHot { .. } => SkipReason::InvalidOneHot,
            DataError::UnknownId { .. } => SkipReason::UnknownId,
            _ => return None,
        })
    }

    /// `(file, line, field)` of a row-level error (a wrong-width row concerns the whole row: field `row`;
    /// a file-name error has no line: 0).
    pub fn location(&self) -> Option<(&std::path::Path, usize, &str)> {
        match self {
            DataError::FieldCount { file, line, .. } => Some((file, *line, "row")),
            DataError::FileName { file, field, .. } => Some((file, 0, field)),
            DataError::MalformedRow {
                file, line, field, ..
            }
            | DataError::Unparsable {
                file, line, field, ..
            }
            | DataError::MissingImage {
                file, line, field, ..
            }
            | DataError::OutsideLabelSet {
                file, line, field, ..
            }
            | DataError::DuplicateId {
                file, line, field, ..
            }
            | DataError::InvalidOneHot {
                file, line, field, ..
            }
            | DataError::UnknownId {
                file, line, field, ..
            } => Some((file, *line, field)),
            _ => None,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        DataError::Io {
            path: path.into(),
            source,
        }
    }
}
