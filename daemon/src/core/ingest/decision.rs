//! The decision engine: SQL or NoSQL for a batch, with a reason and a confidence, in the
//! seed's `decision` shape.
//!
//! **Hints first.** The comment is split into words (lowercased, split at anything
//! that is not a letter or digit). `nosql`, `flexible`, `unstructured` or `schemaless`
//! force NoSQL; `sql` or `relational` force SQL; the confidence is then 1.0. Whole
//! words, so `nosql` does not also count as `sql`. A comment with words of both kinds
//! forces nothing and says so in the reason. Negations ("not sql") are not understood.
//!
//! **Otherwise a score**, the sum of the signals below; SQL when it is >= 0 (RhinoBox's
//! default is SQL unless there are clear NoSQL signals). Each strong NoSQL signal
//! weighs -1.2, more than all SQL signals together (+1.1), so any one of them decides.
//!
//! | signal | weight |
//! | --- | --- |
//! | schema consistency (mean presence of top-level fields) >= 0.9 / >= 0.7 | +0.3 / +0.15 |
//! | type stability >= 0.99 / >= 0.9 | +0.2 / +0.1 |
//! | shallow nesting (depth <= 2) | +0.2 |
//! | foreign-key pattern (`*_id`, `*Id`) / and a key value repeats across documents | +0.2 / +0.3 |
//! | simple flat structure (depth 1, 1-64 fields) | +0.1 |
//! | deep nesting (depth > 3) | -1.2 |
//! | nesting depth exactly 3 | -0.2 |
//! | arrays of objects | -1.2 |
//! | a top-level field with conflicting types (e.g. number and string) | -1.2 |
//! | schema consistency < 0.5 / < 0.7 (varying fields) | -1.2 / -0.5 |
//! | high field variation (more than half the documents have their own field set; both of two) | -0.3 |
//! | object/array-heavy (more than half the top-level values are objects or arrays) | -0.8 |
//! | no fields at all | -1.2 |
//!
//! **Confidence** is `0.5 + 0.5 * min(1, |score|)`: 0.5 on the fence, 1.0 when the
//! signals agree fully (the seed's orders example scores 1.0). **Reason**: the signals
//! that point to the chosen engine, joined by `; `, then `(score X.XX)`, as RhinoBox
//! writes it.
//!
//! The decision is about this batch alone; `Ingestor` keeps an existing dataset on the
//! engine it already has and says so in the reason.

use std::collections::BTreeMap;

use serde::Serialize;

use super::analysis::{round4, BatchAnalysis, SchemaAnalysis, Summary};
use super::schema::{column_defs, columns_for_batch, create_table_sql, table_name, ColumnDef};

/// Where a batch goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    Sql,
    Nosql,
}

impl Engine {
    pub fn as_str(self) -> &'static str {
        match self {
            Engine::Sql => "sql",
            Engine::Nosql => "nosql",
        }
    }

    pub fn parse(s: &str) -> Option<Engine> {
        match s {
            "sql" => Some(Engine::Sql),
            "nosql" => Some(Engine::Nosql),
            _ => None,
        }
    }
}

/// The seed's `decision` object. `schema_sql` and `columns` are present for SQL only,
/// as in RhinoBox (`omitempty`).
#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    pub engine: Engine,
    pub reason: String,
    pub confidence: f64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub schema_sql: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub columns: BTreeMap<String, ColumnDef>,
    pub summary: Summary,
    pub analysis: SchemaAnalysis,
    pub table: String,
    /// The engine a comment hint forced, if any.
    #[serde(skip)]
    pub hint: Option<Engine>,
    /// The sum of the data signals (whatever the hint said).
    #[serde(skip)]
    pub score: f64,
}

/// What a comment asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hint {
    None,
    /// Force this engine; the words that said so.
    Force(Engine, Vec<String>),
    /// Words for both engines: ignored.
    Contradictory(Vec<String>),
}

const NOSQL_WORDS: [&str; 4] = ["nosql", "flexible", "unstructured", "schemaless"];
const SQL_WORDS: [&str; 2] = ["sql", "relational"];

/// Reads the engine hint of a comment.
pub fn comment_hint(comment: &str) -> Hint {
    let lower = comment.to_lowercase();
    let mut nosql = Vec::new();
    let mut sql = Vec::new();
    for word in lower.split(|c: char| !c.is_alphanumeric()) {
        if NOSQL_WORDS.contains(&word) && !nosql.iter().any(|w| w == word) {
            nosql.push(word.to_string());
        } else if SQL_WORDS.contains(&word) && !sql.iter().any(|w| w == word) {
            sql.push(word.to_string());
        }
    }
    match (nosql.is_empty(), sql.is_empty()) {
        (true, true) => Hint::None,
        (false, true) => Hint::Force(Engine::Nosql, nosql),
        (true, false) => Hint::Force(Engine::Sql, sql),
        (false, false) => {
            nosql.extend(sql);
            Hint::Contradictory(nosql)
        }
    }
}

#[derive(Default)]
struct Signals {
    sql: Vec<(f64, String)>,
    nosql: Vec<(f64, String)>,
}

impl Signals {
    fn sql(&mut self, w: f64, why: impl Into<String>) {
        self.sql.push((w, why.into()));
    }
    fn nosql(&mut self, w: f64, why: impl Into<String>) {
        self.nosql.push((w, why.into()));
    }
    fn score(&self) -> f64 {
        self.sql.iter().map(|s| s.0).sum::<f64>() - self.nosql.iter().map(|s| s.0).sum::<f64>()
    }
}

/// Strong NoSQL signals outweigh every SQL signal together.
const STRONG: f64 = 1.2;

fn list(names: &[&String]) -> String {
    let shown: Vec<String> = names.iter().take(3).map(|n| format!("`{n}`")).collect();
    let more = names.len().saturating_sub(3);
    if more > 0 {
        format!("{} and {more} more", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

fn signals(b: &BatchAnalysis) -> Signals {
    let mut s = Signals::default();
    let a = &b.analysis;
    let fs = a.schema_consistency;
    let ts = b.summary.type_stability;
    let depth = a.max_nesting_depth;
    let n = a.record_count;

    if a.field_count == 0 {
        s.nosql(STRONG, "documents have no fields to make columns of");
        return s;
    }
    if a.has_foreign_keys || a.has_relationships {
        let w = if a.has_relationships { 0.3 } else { 0.2 };
        s.sql(w, "foreign keys/relationships present");
    }
    if fs >= 0.9 {
        s.sql(0.3, format!("schema consistency {fs:.2}"));
    } else if fs >= 0.7 {
        s.sql(0.15, format!("schema consistency {fs:.2}"));
    } else if fs >= 0.5 {
        s.nosql(0.5, format!("varying fields (schema consistency {fs:.2})"));
    } else {
        s.nosql(STRONG, format!("low schema consistency {fs:.2}"));
    }
    if ts >= 0.99 {
        s.sql(0.2, format!("type stability {ts:.2}"));
    } else if ts >= 0.9 {
        s.sql(0.1, format!("type stability {ts:.2}"));
    }
    if depth <= 2 {
        s.sql(0.2, "shallow nesting");
    }
    if depth == 1 && a.field_count <= 64 {
        s.sql(0.1, "simple flat structure");
    }
    if depth > 3 {
        s.nosql(STRONG, format!("deep nesting (depth {depth})"));
    } else if depth == 3 {
        s.nosql(0.2, "nesting depth 3");
    }
    if !b.array_object_fields.is_empty() {
        let names: Vec<&String> = b.array_object_fields.iter().collect();
        s.nosql(STRONG, format!("arrays of objects ({})", list(&names)));
    }
    if !b.mixed_type_fields.is_empty() {
        let names: Vec<&String> = b.mixed_type_fields.iter().collect();
        s.nosql(STRONG, format!("mixed types in field {}", list(&names)));
    }
    let u = a.unique_field_sets;
    if (n >= 3 && u * 2 > n) || (n == 2 && u == 2) {
        s.nosql(
            0.3,
            format!("high field variation ({u} field sets in {n} documents)"),
        );
    }
    if b.nested_value_share > 0.5 {
        s.nosql(0.8, "object/array-heavy structure");
    }
    s
}

fn join(reasons: &[(f64, String)]) -> String {
    reasons
        .iter()
        .map(|r| r.1.as_str())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Decides where the batch analysed in `b` goes. For SQL, `schema_sql` and `columns`
/// describe the table this batch alone would create.
pub fn decide(namespace: &str, comment: &str, b: &BatchAnalysis) -> Decision {
    let s = signals(b);
    let score = round4(s.score());
    let data_engine = if score >= 0.0 {
        Engine::Sql
    } else {
        Engine::Nosql
    };
    let data_reasons = match data_engine {
        Engine::Sql => join(&s.sql),
        Engine::Nosql => join(&s.nosql),
    };
    let data_reasons = if data_reasons.is_empty() {
        match data_engine {
            Engine::Sql => "simple consistent structure".to_string(),
            Engine::Nosql => "optimized for flexible schema".to_string(),
        }
    } else {
        data_reasons
    };
    let data_confidence = round4(0.5 + 0.5 * score.abs().min(1.0));
    let (engine, reason, confidence, hint) = match comment_hint(comment) {
        Hint::Force(e, words) => {
            let words = words.join("`, `");
            let reason = if e == data_engine {
                format!("comment hint `{words}`; {data_reasons} (score {score:.2})")
            } else {
                format!(
                    "comment hint `{words}` overrides the data, which points to {}: \
                     {data_reasons} (score {score:.2})",
                    data_engine.as_str()
                )
            };
            (e, reason, 1.0, Some(e))
        }
        Hint::Contradictory(words) => (
            data_engine,
            format!(
                "{data_reasons} (score {score:.2}); comment hints `{}` contradict each other \
                 and were ignored",
                words.join("`, `")
            ),
            data_confidence,
            None,
        ),
        Hint::None => (
            data_engine,
            format!("{data_reasons} (score {score:.2})"),
            data_confidence,
            None,
        ),
    };
    let table = table_name(namespace);
    let (schema_sql, columns) = if engine == Engine::Sql {
        let cols = columns_for_batch(&b.top, b.analysis.record_count);
        (create_table_sql(&table, &cols), column_defs(&cols))
    } else {
        (String::new(), BTreeMap::new())
    };
    Decision {
        engine,
        reason,
        confidence,
        schema_sql,
        columns,
        summary: b.summary.clone(),
        analysis: b.analysis.clone(),
        table,
        hint,
        score,
    }
}
