//! A small CSV reader for numeric tables: optional header, a configurable delimiter, simple
//! double-quoted fields, and errors that name the line (1-based, as an editor shows it) and
//! column of the first bad value.
//!
//! Invariant: a [`CsvTable`] is rectangular — every data row has `columns` values.

use super::dataset::Dataset;
use graphgrad_autodiff::{bail, Result};
use std::path::Path;

/// Whether the first line is a header of column names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Header {
    /// The first line names the columns.
    Present,
    /// Every line is data.
    Absent,
    /// The first line is a header when one of its fields is not a number.
    Auto,
}

/// How to read a CSV file.
#[derive(Clone, Debug, PartialEq)]
pub struct CsvOptions {
    /// Field separator (`,` by default).
    pub delimiter: char,
    /// Header handling ([`Header::Auto`] by default).
    pub header: Header,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions { delimiter: ',', header: Header::Auto }
    }
}

impl CsvOptions {
    /// Uses `delimiter` between fields (e.g. `';'` or `'\t'`).
    pub fn with_delimiter(mut self, delimiter: char) -> Self {
        self.delimiter = delimiter;
        self
    }

    /// Sets the header handling.
    pub fn with_header(mut self, header: Header) -> Self {
        self.header = header;
        self
    }
}

/// A numeric table read from CSV: `rows × columns` values, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct CsvTable {
    /// Column names, when the file had a header.
    pub header: Option<Vec<String>>,
    /// Number of data rows.
    pub rows: usize,
    /// Values per row.
    pub columns: usize,
    /// The values, row-major.
    pub values: Vec<f64>,
    /// The 1-based file line of each data row (for error messages after parsing).
    pub lines: Vec<usize>,
}

/// Reads the CSV file at `path` (see [`parse_csv`]).
pub fn read_csv(path: impl AsRef<Path>, options: &CsvOptions) -> Result<CsvTable> {
    let path = path.as_ref();
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => bail!("read_csv", "cannot read {}: {e}", path.display()),
    };
    parse_csv(&text, options).map_err(|e| match e {
        graphgrad_autodiff::Error::InvalidArgument { op, reason } => {
            graphgrad_autodiff::Error::InvalidArgument { op, reason: format!("{}: {reason}", path.display()) }
        }
        other => other,
    })
}

/// Parses CSV text into a numeric table. Blank lines are skipped; fields are trimmed and may
/// be wrapped in double quotes (`""` inside quotes is one quote). Errors name the line and
/// column of the first field that is not a number, and the first row whose field count
/// differs from the first row's.
///
/// ```
/// use graphgrad_nn::data::{parse_csv, CsvOptions};
/// let table = parse_csv("x,y,label\n0.5,1,0\n2,-3e1,1\n", &CsvOptions::default())?;
/// assert_eq!(table.header.as_deref(), Some(&["x".to_string(), "y".into(), "label".into()][..]));
/// assert_eq!((table.rows, table.columns), (2, 3));
/// assert_eq!(table.values, vec![0.5, 1.0, 0.0, 2.0, -30.0, 1.0]);
/// # Ok::<(), graphgrad_autodiff::Error>(())
/// ```
pub fn parse_csv(text: &str, options: &CsvOptions) -> Result<CsvTable> {
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l)).filter(|(_, l)| !l.trim().is_empty());
    let mut table = CsvTable { header: None, rows: 0, columns: 0, values: Vec::new(), lines: Vec::new() };
    let Some((first_no, first)) = lines.next() else {
        return Ok(table);
    };
    let first_fields = split_fields(first, options.delimiter, first_no)?;
    let is_header = match options.header {
        Header::Present => true,
        Header::Absent => false,
        Header::Auto => first_fields.iter().any(|f| f.parse::<f64>().is_err()),
    };
    table.columns = first_fields.len();
    if is_header {
        table.header = Some(first_fields);
    } else {
        push_row(&mut table, &first_fields, first_no)?;
    }
    for (no, line) in lines {
        let fields = split_fields(line, options.delimiter, no)?;
        push_row(&mut table, &fields, no)?;
    }
    Ok(table)
}

fn push_row(table: &mut CsvTable, fields: &[String], line: usize) -> Result<()> {
    if fields.len() != table.columns {
        bail!(
            "read_csv",
            "line {line}: {} fields, expected {} (as in the first row)",
            fields.len(),
            table.columns
        );
    }
    for (col, field) in fields.iter().enumerate() {
        match field.parse::<f64>() {
            Ok(v) => table.values.push(v),
            Err(_) => {
                let name = table.header.as_ref().map(|h| format!(" ({})", h[col])).unwrap_or_default();
                bail!("read_csv", "line {line}, column {}{name}: {field:?} is not a number", col + 1)
            }
        }
    }
    table.rows += 1;
    table.lines.push(line);
    Ok(())
}

/// Splits one line into trimmed fields, honouring double quotes.
fn split_fields(line: &str, delimiter: char, line_no: usize) -> Result<Vec<String>> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars().peekable();
    let mut in_quotes = false;
    while let Some(c) = chars.next() {
        match c {
            '"' if in_quotes && chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            '"' if in_quotes => in_quotes = false,
            '"' if field.trim().is_empty() => {
                field.clear();
                in_quotes = true;
            }
            c if c == delimiter && !in_quotes => fields.push(std::mem::take(&mut field).trim().to_string()),
            c => field.push(c),
        }
    }
    if in_quotes {
        bail!("read_csv", "line {line_no}: unterminated quoted field");
    }
    fields.push(field.trim().to_string());
    Ok(fields)
}

impl CsvTable {
    /// The values of column `col`, top to bottom.
    pub fn column(&self, col: usize) -> Option<Vec<f64>> {
        (col < self.columns).then(|| self.values.iter().skip(col).step_by(self.columns).copied().collect())
    }

    /// A classification data set: column `label_column` (counted from 0; `None` = the last)
    /// holds non-negative integer class labels, every other column is a feature.
    pub fn into_classification(self, label_column: Option<usize>) -> Result<Dataset> {
        let label_col = self.label_column("into_classification", label_column)?;
        let mut features = Vec::with_capacity(self.rows * (self.columns - 1));
        let mut labels = Vec::with_capacity(self.rows);
        for (r, row) in self.values.chunks_exact(self.columns).enumerate() {
            let label = row[label_col];
            let Some(class) = super::dataset::class_index(label) else {
                bail!(
                    "read_csv",
                    "line {}, column {}: label {label:?} is not a class index (an integer in 0..=2^53)",
                    self.lines[r],
                    label_col + 1
                );
            };
            labels.push(class);
            features.extend(row.iter().enumerate().filter(|&(c, _)| c != label_col).map(|(_, &v)| v as f32));
        }
        Dataset::classification(features, &[self.columns - 1], labels)
    }

    /// A regression data set: the last `target_columns` columns are targets, the rest features.
    pub fn into_regression(self, target_columns: usize) -> Result<Dataset> {
        if target_columns == 0 || target_columns >= self.columns {
            bail!(
                "into_regression",
                "{target_columns} target columns out of {} leaves no features",
                self.columns
            );
        }
        let n_features = self.columns - target_columns;
        let mut features = Vec::with_capacity(self.rows * n_features);
        let mut targets = Vec::with_capacity(self.rows * target_columns);
        for row in self.values.chunks_exact(self.columns) {
            features.extend(row[..n_features].iter().map(|&v| v as f32));
            targets.extend(row[n_features..].iter().map(|&v| v as f32));
        }
        Dataset::regression(features, &[n_features], targets, target_columns)
    }

    fn label_column(&self, op: &'static str, label_column: Option<usize>) -> Result<usize> {
        if self.columns < 2 {
            bail!(op, "needs at least one feature column and a label column, the table has {}", self.columns);
        }
        let col = label_column.unwrap_or(self.columns - 1);
        if col >= self.columns {
            bail!(op, "label column {col} does not exist in a table of {} columns", self.columns);
        }
        Ok(col)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_detection_and_values() -> Result<()> {
        let with = parse_csv("a,b\n1,2\n\n3,4\n", &CsvOptions::default())?;
        assert_eq!(with.header, Some(vec!["a".into(), "b".into()]));
        assert_eq!((with.rows, with.columns, with.values.clone()), (2, 2, vec![1.0, 2.0, 3.0, 4.0]));
        assert_eq!(with.lines, vec![2, 4], "the blank line 3 is skipped but still counted");
        let without = parse_csv("1,2\n3,4", &CsvOptions::default())?;
        assert_eq!((without.header, without.rows), (None, 2));
        let forced = parse_csv("1,2\n3,4", &CsvOptions::default().with_header(Header::Present))?;
        assert_eq!((forced.header, forced.rows), (Some(vec!["1".into(), "2".into()]), 1));
        let semi = parse_csv(" 1 ; \"2\" \n", &CsvOptions::default().with_delimiter(';'))?;
        assert_eq!(semi.values, vec![1.0, 2.0]);
        let quoted = parse_csv("\"x, \"\"the\"\" first\",y\n1,2", &CsvOptions::default())?;
        assert_eq!(quoted.header.as_ref().unwrap()[0], "x, \"the\" first");
        assert_eq!(quoted.column(1), Some(vec![2.0]));
        assert_eq!(parse_csv("", &CsvOptions::default())?.rows, 0);
        Ok(())
    }

    #[test]
    fn errors_name_line_and_column() {
        let err = |text: &str, opts: CsvOptions| parse_csv(text, &opts).unwrap_err().to_string();
        let e = err("a,b\n1,2\n3,oops\n", CsvOptions::default());
        assert!(e.contains("line 3, column 2 (b)") && e.contains("\"oops\""), "{e}");
        let e = err("1,2\n3,4\n5\n", CsvOptions::default());
        assert!(e.contains("line 3: 1 fields, expected 2"), "{e}");
        let e = err("x,y\n\"1,2\n", CsvOptions::default());
        assert!(e.contains("line 2: unterminated"), "{e}");
        let e = err("1,x\n", CsvOptions::default().with_header(Header::Absent));
        assert!(e.contains("line 1, column 2"), "{e}");
        let e = parse_csv("1,2.5\n", &CsvOptions::default()).unwrap().into_classification(None).unwrap_err();
        assert!(e.to_string().contains("line 1, column 2: label 2.5"), "{e}");
        assert!(read_csv("/nonexistent/graphgrad.csv", &CsvOptions::default()).is_err());
    }

    #[test]
    fn tables_become_datasets() -> Result<()> {
        let table = parse_csv("f1,label,f2\n0.5,1,7\n1.5,0,8\n", &CsvOptions::default())?;
        let ds = table.clone().into_classification(Some(1))?;
        assert_eq!((ds.features(), ds.labels()), (&[0.5f32, 7.0, 1.5, 8.0][..], Some(&[1usize, 0][..])));
        let reg = table.into_regression(2)?;
        assert_eq!(reg.features(), &[0.5, 1.5]);
        assert_eq!(reg.targets(), &crate::data::Targets::Values { data: vec![1.0, 7.0, 0.0, 8.0], dim: 2 });
        Ok(())
    }

    #[test]
    fn reads_a_file_and_names_it_in_errors() -> Result<()> {
        let dir = std::env::temp_dir().join(format!("graphgrad-csv-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.csv");
        std::fs::write(&good, "x,label\n1,0\n2,1\n").unwrap();
        assert_eq!(read_csv(&good, &CsvOptions::default())?.into_classification(None)?.len(), 2);
        let bad = dir.join("bad.csv");
        std::fs::write(&bad, "x,label\n1,0\nz,1\n").unwrap();
        let e = read_csv(&bad, &CsvOptions::default()).unwrap_err().to_string();
        assert!(e.contains("bad.csv") && e.contains("line 3"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
        Ok(())
    }
}
