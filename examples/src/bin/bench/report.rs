//! The results: a JSON object filled by dotted keys, and the table printed at the end.

use serde_json::{Map, Value};

/// One table row.
#[derive(Debug, Clone)]
pub struct Row {
    /// The figure, e.g. "1. setup ws".
    pub figure: String,
    /// What was measured.
    pub measured: String,
    /// The baseline measured in the same run.
    pub baseline: String,
    /// The target and whether it is met.
    pub target: String,
}

/// Everything measured so far.
#[derive(Debug, Default)]
pub struct Report {
    json: Map<String, Value>,
    rows: Vec<Row>,
}

impl Report {
    /// Sets `key` (dotted path, e.g. `setup.ws.p50_us`) to `value`.
    pub fn set(&mut self, key: &str, value: impl Into<Value>) {
        let mut parts: Vec<&str> = key.split('.').collect();
        let last = parts.pop().unwrap_or(key);
        let mut obj = &mut self.json;
        for p in parts {
            let entry = obj
                .entry(p.to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            if !entry.is_object() {
                *entry = Value::Object(Map::new());
            }
            match entry {
                Value::Object(m) => obj = m,
                _ => return,
            }
        }
        obj.insert(last.to_owned(), value.into());
    }

    /// Adds a table row.
    pub fn row(
        &mut self,
        figure: impl Into<String>,
        measured: impl Into<String>,
        baseline: impl Into<String>,
        target: impl Into<String>,
    ) {
        self.rows.push(Row {
            figure: figure.into(),
            measured: measured.into(),
            baseline: baseline.into(),
            target: target.into(),
        });
    }

    /// The JSON document.
    pub fn json(&self) -> Value {
        Value::Object(self.json.clone())
    }

    /// The table, as Markdown (pasted into docs/BENCHMARKS.md as is).
    pub fn table(&self) -> String {
        let mut s = String::from(
            "| figure | measured | baseline (same run) | target |\n|---|---|---|---|\n",
        );
        for r in &self.rows {
            s.push_str(&format!(
                "| {} | {} | {} | {} |\n",
                r.figure, r.measured, r.baseline, r.target
            ));
        }
        s
    }
}

/// "met" or "missed" for a target check.
pub fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "**missed**"
    }
}
