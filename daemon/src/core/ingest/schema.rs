//! SQL side of a batch: table names, column names and types, identifier quoting, and
//! the `CREATE TABLE` text. Everything here is pure; `datasets.rs` runs it.
//!
//! * **Tables** are named after the namespace as RhinoBox does (lowercase, `-` becomes
//!   `_`, other characters dropped, `_` trimmed at both ends; `dataset` if nothing is
//!   left), so a table name never starts with `_` (the catalogue's `_datasets` and the
//!   row key `_rowid` cannot collide with one) and never needs more than plain quoting.
//!   A name starting with `sqlite_` is refused (SQLite reserves it).
//! * **Columns** are the documents' top-level field names, verbatim: any UTF-8 up to
//!   [`Limits::max_column_name_bytes`], quoted with `"` (a `"` inside is doubled), so a
//!   field called `select`, `order` or `a"); DROP TABLE x; --` is just a column. Names
//!   that are empty, contain a NUL or another control character, equal `_rowid`, or
//!   differ from another field only in ASCII case (SQLite compares identifiers
//!   case-insensitively) are refused with a message naming them.
//! * **Row key**: every table starts with `"_rowid" INTEGER PRIMARY KEY`, an alias of
//!   SQLite's rowid under a name that documents cannot shadow (a document field named
//!   `rowid` or `oid` would hide SQLite's own alias). `rows()` pages on it.
//! * **Types** (declared type, SQLite affinity, what a value becomes):
//!
//!   | values of the field in the batch | column | stored as |
//!   | --- | --- | --- |
//!   | integers (fit i64) | `INTEGER` | 64-bit integer |
//!   | floats, or integers and floats with every integer within ±2^53 | `REAL` | double |
//!   | booleans | `BOOLEAN` (NUMERIC affinity) | 0 / 1 |
//!   | strings | `TEXT` | text |
//!   | objects, arrays, conflicting types, integers beyond ±2^53 mixed with floats, or only nulls | `JSON` (NUMERIC affinity) | the value's JSON text |
//!
//!   A `JSON` cell always holds valid JSON text; NUMERIC affinity may store a bare
//!   number's text as a number, which reads back as the same JSON number. An integer
//!   above i64::MAX is a float for this table (its column is `REAL`), so it is rounded
//!   to 53 bits in SQLite; the batch file keeps its digits.
//! * **NOT NULL** marks a field present and non-null in every document of the batch
//!   that created the table (the seed's `required`). Columns added by later batches are
//!   nullable.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::analysis::{JsonType, TopField};
use super::error::IngestError;
use super::limits::Limits;

/// The row key column every dataset table has.
pub const ROWID_COLUMN: &str = "_rowid";

/// A column's declared type; the set is closed so the catalogue can read it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColType {
    Integer,
    Real,
    Boolean,
    Text,
    Json,
}

impl ColType {
    /// The declared type in `CREATE TABLE` and in the decision's `columns`.
    pub fn sql(self) -> &'static str {
        match self {
            ColType::Integer => "INTEGER",
            ColType::Real => "REAL",
            ColType::Boolean => "BOOLEAN",
            ColType::Text => "TEXT",
            ColType::Json => "JSON",
        }
    }

    pub fn parse(s: &str) -> Option<ColType> {
        Some(match s {
            "INTEGER" => ColType::Integer,
            "REAL" => ColType::Real,
            "BOOLEAN" => ColType::Boolean,
            "TEXT" => ColType::Text,
            "JSON" => ColType::Json,
            _ => return None,
        })
    }

    /// The type a column gets from the values of one batch (see the module table).
    pub fn for_field(f: &TopField) -> ColType {
        let ints = f.count(JsonType::Integer);
        let floats = f.count(JsonType::Float);
        let bools = f.count(JsonType::Boolean);
        let strings = f.count(JsonType::String);
        let nested = f.count(JsonType::Array) + f.count(JsonType::Object);
        let kinds = f.non_null_kinds();
        if kinds != 1 || nested > 0 {
            return ColType::Json; // only nulls, conflicting types, or nested values
        }
        if bools > 0 {
            ColType::Boolean
        } else if strings > 0 {
            ColType::Text
        } else if floats == 0 {
            ColType::Integer
        } else if ints > 0 && f.has_wide_integer {
            ColType::Json
        } else {
            ColType::Real
        }
    }
}

/// One column of a dataset table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub ty: ColType,
    /// `NOT NULL`.
    pub required: bool,
}

/// The seed's `columns` entry: `{"name": ..., "type": ..., "required": ...}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ColumnDef {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: String,
    pub required: bool,
}

impl Column {
    pub fn def(&self) -> ColumnDef {
        ColumnDef {
            name: self.name.clone(),
            ty: self.ty.sql().to_string(),
            required: self.required,
        }
    }
}

/// The seed's `columns` map, name -> definition.
pub fn column_defs(columns: &[Column]) -> BTreeMap<String, ColumnDef> {
    columns.iter().map(|c| (c.name.clone(), c.def())).collect()
}

/// `"name"` with every `"` doubled: the only quoting SQLite needs for an identifier.
/// Callers have refused NUL already (SQLite would end the identifier there).
pub fn quote_ident(name: &str) -> String {
    let mut s = String::with_capacity(name.len() + 2);
    s.push('"');
    for c in name.chars() {
        if c == '"' {
            s.push('"');
        }
        s.push(c);
    }
    s.push('"');
    s
}

/// The table a namespace's SQL documents go to (RhinoBox's sanitising).
pub fn table_name(namespace: &str) -> String {
    let mut s = String::with_capacity(namespace.len());
    for c in namespace.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' {
            s.push(c);
        } else if c == '-' || c == ' ' {
            s.push('_');
        }
    }
    let t = s.trim_matches('_');
    if t.is_empty() {
        "dataset".to_string()
    } else {
        t.to_string()
    }
}

/// `Ok` unless `table` is one SQLite keeps for itself.
pub fn check_table_name(table: &str) -> Result<(), IngestError> {
    if table.to_ascii_lowercase().starts_with("sqlite_") {
        return Err(IngestError::BadRequest(format!(
            "table `{table}` cannot be created: names starting with sqlite_ are reserved by SQLite; \
             use another namespace"
        )));
    }
    Ok(())
}

/// `Ok` if `name` may be a column.
pub fn check_column_name(name: &str, limits: &Limits) -> Result<(), IngestError> {
    let bad = |why: String| {
        Err(IngestError::BadRequest(format!(
            "field `{}` cannot be a SQL column: {why}",
            name.escape_debug()
        )))
    };
    if name.is_empty() {
        return bad("the name is empty".into());
    }
    if name.len() > limits.max_column_name_bytes {
        return bad(format!(
            "the name is {} bytes; at most {} are allowed",
            name.len(),
            limits.max_column_name_bytes
        ));
    }
    if name.contains('\0') {
        return bad("the name contains a NUL character".into());
    }
    if name.chars().any(char::is_control) {
        return bad("the name contains a control character".into());
    }
    if name.eq_ignore_ascii_case(ROWID_COLUMN) {
        return bad(format!(
            "`{ROWID_COLUMN}` is the row key of every dataset table"
        ));
    }
    Ok(())
}

/// Checks every name and refuses two that only differ in ASCII case.
pub fn check_column_names<'a>(
    names: impl IntoIterator<Item = &'a str>,
    limits: &Limits,
) -> Result<(), IngestError> {
    let mut seen: BTreeMap<String, &str> = BTreeMap::new();
    for name in names {
        check_column_name(name, limits)?;
        if let Some(prev) = seen.insert(name.to_ascii_lowercase(), name) {
            return Err(IngestError::BadRequest(format!(
                "fields `{}` and `{}` differ only in case; SQL column names ignore case, \
                 so they cannot both be columns",
                prev.escape_debug(),
                name.escape_debug()
            )));
        }
    }
    Ok(())
}

/// The columns a new table gets from one batch of `documents` documents.
pub fn columns_for_batch(top: &BTreeMap<String, TopField>, documents: usize) -> Vec<Column> {
    top.iter()
        .map(|(name, f)| Column {
            name: name.clone(),
            ty: ColType::for_field(f),
            required: f.present == documents && f.nulls == 0,
        })
        .collect()
}

/// `CREATE TABLE IF NOT EXISTS "<table>" (...)` for these columns, in RhinoBox's
/// layout (one column per line, a final `;`).
pub fn create_table_sql(table: &str, columns: &[Column]) -> String {
    let mut s = format!(
        "CREATE TABLE IF NOT EXISTS {} (\n    {} INTEGER PRIMARY KEY",
        quote_ident(table),
        quote_ident(ROWID_COLUMN)
    );
    for c in columns {
        s.push_str(",\n    ");
        s.push_str(&column_sql(c));
    }
    s.push_str("\n);");
    s
}

/// One column definition: `"name" TYPE [NOT NULL]`.
pub fn column_sql(c: &Column) -> String {
    let mut s = format!("{} {}", quote_ident(&c.name), c.ty.sql());
    if c.required {
        s.push_str(" NOT NULL");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(types: &[(JsonType, usize)], nulls: usize, wide: bool) -> TopField {
        let mut f = TopField {
            nulls,
            has_wide_integer: wide,
            ..TopField::default()
        };
        for (t, n) in types {
            f.type_counts[*t as usize] = *n;
            f.present += n;
        }
        f.present += nulls;
        f
    }

    #[test]
    fn quoting() {
        assert_eq!(quote_ident("a"), "\"a\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_ident("select"), "\"select\"");
        assert_eq!(
            quote_ident("x\"); DROP TABLE t; --"),
            "\"x\"\"); DROP TABLE t; --\""
        );
    }

    #[test]
    fn table_names() {
        assert_eq!(table_name("orders"), "orders");
        assert_eq!(table_name("My-Orders.2024"), "my_orders2024");
        assert_eq!(table_name("__x__"), "x");
        assert_eq!(table_name("---"), "dataset");
        assert_eq!(table_name("."), "dataset");
        assert!(check_table_name("sqlite_stat1").is_err());
        assert!(check_table_name("orders").is_ok());
    }

    #[test]
    fn column_names() {
        let l = Limits::default();
        assert!(check_column_name("order", &l).is_ok());
        assert!(check_column_name("a\"b", &l).is_ok());
        assert!(check_column_name("naïve", &l).is_ok());
        for bad in ["", "a\0b", "a\nb", "_rowid", "_ROWID"] {
            assert!(check_column_name(bad, &l).is_err(), "{bad:?}");
        }
        let long = "x".repeat(129);
        let e = check_column_name(&long, &l).unwrap_err().to_string();
        assert!(e.contains("129 bytes"), "{e}");
        let e = check_column_names(["Name", "age", "name"], &l)
            .unwrap_err()
            .to_string();
        assert!(e.contains("differ only in case"), "{e}");
        assert!(check_column_names(["rowid", "oid"], &l).is_ok());
    }

    #[test]
    fn types_from_values() {
        use JsonType::*;
        let t = |types: &[(JsonType, usize)], wide| ColType::for_field(&field(types, 0, wide));
        assert_eq!(t(&[(Integer, 3)], false), ColType::Integer);
        assert_eq!(t(&[(Float, 3)], false), ColType::Real);
        assert_eq!(t(&[(Integer, 2), (Float, 1)], false), ColType::Real);
        assert_eq!(t(&[(Integer, 2), (Float, 1)], true), ColType::Json);
        assert_eq!(t(&[(Integer, 2)], true), ColType::Integer);
        assert_eq!(t(&[(Boolean, 1)], false), ColType::Boolean);
        assert_eq!(t(&[(String, 1)], false), ColType::Text);
        assert_eq!(t(&[(Object, 1)], false), ColType::Json);
        assert_eq!(t(&[(Array, 1)], false), ColType::Json);
        assert_eq!(t(&[(String, 1), (Integer, 1)], false), ColType::Json);
        assert_eq!(t(&[], false), ColType::Json);
        for ty in [
            ColType::Integer,
            ColType::Real,
            ColType::Boolean,
            ColType::Text,
            ColType::Json,
        ] {
            assert_eq!(ColType::parse(ty.sql()), Some(ty));
        }
    }

    #[test]
    fn create_table_text() {
        let cols = vec![
            Column {
                name: "order".into(),
                ty: ColType::Integer,
                required: true,
            },
            Column {
                name: "no\"te".into(),
                ty: ColType::Text,
                required: false,
            },
        ];
        assert_eq!(
            create_table_sql("orders", &cols),
            "CREATE TABLE IF NOT EXISTS \"orders\" (\n    \"_rowid\" INTEGER PRIMARY KEY,\n    \
             \"order\" INTEGER NOT NULL,\n    \"no\"\"te\" TEXT\n);"
        );
    }
}
