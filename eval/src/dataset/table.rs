//! CSV reading shared by the loaders: header lookup with a clear "missing column" error, records with their
//! 1-based line numbers, and constructors for row-level errors.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::DataError;

/// A header column by name and position.
#[derive(Clone, Debug)]
pub(crate) struct Column {
    pub index: usize,
    pub name: String,
}

/// A CSV file read into memory, positioned after its header.
pub(crate) struct Table {
    file: Rc<Path>,
    headers: Vec<String>,
    reader: csv::Reader<Cursor<Rc<[u8]>>>,
    lines: LineCounter,
}

impl Table {
    /// Opens `path` and reads the header (names trimmed, a UTF-8 BOM removed). The csv reader is flexible so
    /// that a row of the wrong width reaches [`Table::rows`], which reports it with its line and both counts
    /// instead of the csv crate's generic message.
    pub fn open(path: &Path) -> Result<Table, DataError> {
        let data: Rc<[u8]> = std::fs::read(path)
            .map_err(|e| DataError::io(path, e))?
            .into();
        let lines = LineCounter {
            data: Rc::clone(&data),
            pos: 0,
            line: 1,
        };
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(true)
            .from_reader(Cursor::new(data));
        let headers = reader
            .headers()
            .map_err(|e| csv_error(path, 1, "header", e))?
            .iter()
            .map(|h| h.trim_start_matches('\u{feff}').trim().to_string())
            .collect();
        Ok(Table {
            file: Rc::from(path),
            headers,
            reader,
            lines,
        })
    }

    pub fn headers(&self) -> &[String] {
        &self.headers
    }

    /// The column named `name`, or a missing-column error.
    pub fn column(&self, name: &str) -> Result<Column, DataError> {
        self.column_any(&[name])
    }

    /// The first present column of `names` (alternative spellings of one field).
    pub fn column_any(&self, names: &[&str]) -> Result<Column, DataError> {
        for name in names {
            if let Some(index) = self.headers.iter().position(|h| h == name) {
                return Ok(Column {
                    index,
                    name: (*name).to_string(),
                });
            }
        }
        Err(DataError::MissingColumn {
            file: self.file.to_path_buf(),
            column: names.join("` or `"),
            header: self.headers.join(","),
        })
    }

    /// The data rows, each with its line number. A row that cannot be read, or whose field count differs
    /// from the header's, is an `Err` naming its line; iteration continues after it. Strict width matters:
    /// a short or long row would otherwise be read with whatever its fields happen to hold (a shifted
    /// label becomes training data).
    pub fn rows(self) -> impl Iterator<Item = Result<Row, DataError>> {
        let file = self.file;
        let mut lines = self.lines;
        let expected = self.headers.len();
        self.reader.into_records().map(move |r| match r {
            Ok(record) if record.len() != expected => {
                let line = lines.line_of(record.position());
                Err(DataError::FieldCount {
                    file: file.to_path_buf(),
                    line,
                    expected,
                    found: record.len(),
                })
            }
            Ok(record) => {
                let line = lines.line_of(record.position());
                Ok(Row {
                    file: Rc::clone(&file),
                    line,
                    record,
                })
            }
            Err(e) => {
                let line = lines.line_of(e.position());
                Err(csv_error(&file, line, "row", e))
            }
        })
    }
}

/// 1-based line numbers from byte offsets. The csv crate's own line count is one short for every record
/// of a CRLF file (a record's position is taken between the `\r` and the `\n` of the previous line), so
/// lines are counted here from the bytes.
struct LineCounter {
    data: Rc<[u8]>,
    /// Bytes before `pos` are counted; `line` is the line at `pos`.
    pos: usize,
    line: usize,
}

impl LineCounter {
    /// The line on which the record at `position` starts (leading line-break bytes skipped). Positions
    /// must not decrease; without a position, the line after the last one counted.
    fn line_of(&mut self, position: Option<&csv::Position>) -> usize {
        let Some(p) = position else {
            return self.line + 1;
        };
        let mut start = usize::try_from(p.byte())
            .unwrap_or(usize::MAX)
            .min(self.data.len());
        while matches!(self.data.get(start), Some(b'\r' | b'\n')) {
            start += 1;
        }
        if start < self.pos {
            self.pos = 0;
            self.line = 1;
        }
        self.line += self.data[self.pos..start]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        self.pos = start;
        self.line
    }
}

/// One data row of a [`Table`].
pub(crate) struct Row {
    file: Rc<Path>,
    pub line: usize,
    record: csv::StringRecord,
}

impl Row {
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// The trimmed value of `col`, or an error if the row is too short to have it.
    pub fn get(&self, col: &Column) -> Result<&str, DataError> {
        self.record
            .get(col.index)
            .map(str::trim)
            .ok_or_else(|| DataError::MalformedRow {
                file: self.file.to_path_buf(),
                line: self.line,
                field: col.name.clone(),
                message: format!(
                    "the row has {} fields, the column is number {}",
                    self.record.len(),
                    col.index + 1
                ),
            })
    }

    /// The value of `col`, which must not be empty.
    pub fn get_nonempty(&self, col: &Column, what: &str) -> Result<&str, DataError> {
        let v = self.get(col)?;
        if v.is_empty() {
            return Err(self.unparsable(col, v, what));
        }
        Ok(v)
    }

    pub fn unparsable(&self, col: &Column, value: &str, expected: &str) -> DataError {
        DataError::Unparsable {
            file: self.file.to_path_buf(),
            line: self.line,
            field: col.name.clone(),
            value: value.to_string(),
            expected: expected.to_string(),
        }
    }

    pub fn missing_image(&self, col: &Column, id: &str, searched: &Path) -> DataError {
        DataError::MissingImage {
            file: self.file.to_path_buf(),
            line: self.line,
            field: col.name.clone(),
            id: id.to_string(),
            searched: searched.to_path_buf(),
        }
    }

    pub fn origin(&self) -> super::Origin {
        super::Origin {
            file: self.file.to_path_buf(),
            line: self.line,
        }
    }
}

fn csv_error(file: &Path, line: usize, field: &str, e: csv::Error) -> DataError {
    let message = e.to_string();
    match e.into_kind() {
        csv::ErrorKind::Io(source) => DataError::Io {
            path: PathBuf::from(file),
            source,
        },
        _ => DataError::MalformedRow {
            file: file.to_path_buf(),
            line,
            field: field.to_string(),
            message,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_of(text: &str) -> Vec<(usize, String)> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        std::fs::write(&path, text).unwrap();
        let table = Table::open(&path).unwrap();
        let col = table.column("a").unwrap();
        table
            .rows()
            .map(|r| {
                let r = r.unwrap();
                (r.line, r.get(&col).unwrap().to_string())
            })
            .collect()
    }

    #[test]
    fn line_numbers_with_lf_crlf_quoted_newlines_and_blank_lines() {
        let expected = vec![
            (2, "x".to_string()),
            (3, "y".to_string()),
            (5, "z".to_string()),
        ];
        assert_eq!(lines_of("a,b\nx,1\ny,2\n\nz,3\n"), expected);
        assert_eq!(lines_of("a,b\r\nx,1\r\ny,2\r\n\r\nz,3\r\n"), expected);
        assert_eq!(lines_of("\u{feff}a,b\r\nx,1\r\ny,2\r\n\r\nz,3"), expected);
        assert_eq!(
            lines_of("a,b\n\"multi\nline\",1\nnext,2\n"),
            vec![(2, "multi\nline".to_string()), (4, "next".to_string())]
        );
    }
}
