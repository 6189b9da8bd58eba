//! A reader over `serde_json::Value` that follows Go's `encoding/json` rules for MarbleRun manifests.
//!
//! Field names match case-insensitively (Go prefers an exact match but accepts any case); names that differ
//! only in case inside one object are refused as ambiguous, which Go would silently resolve by order. Unknown
//! fields are ignored. `null` means "absent". Map keys (package, marble, secret names, file paths) are data
//! and match exactly. Every problem is recorded with its JSON path, and decoding goes on so that one run
//! reports all of them.

use serde_json::{Map, Value};

/// A JSON path such as `Marbles.backend.Parameters.Files["/tmp/a"]`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Path(String);

impl Path {
    pub(crate) fn root() -> Self {
        Path(String::new())
    }

    /// The path of a member: `.name` for identifier-like names, `["name"]` otherwise.
    pub(crate) fn key(&self, name: &str) -> Path {
        let plain = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            && !name.starts_with(|c: char| c.is_ascii_digit());
        if plain {
            if self.0.is_empty() {
                Path(name.to_owned())
            } else {
                Path(format!("{}.{name}", self.0))
            }
        } else {
            let quoted = serde_json::to_string(name).unwrap_or_else(|_| format!("{name:?}"));
            Path(format!("{}[{quoted}]", self.0))
        }
    }

    pub(crate) fn index(&self, i: usize) -> Path {
        Path(format!("{}[{i}]", self.0))
    }

    pub(crate) fn as_str(&self) -> &str {
        if self.0.is_empty() {
            "(manifest)"
        } else {
            &self.0
        }
    }
}

impl std::fmt::Display for Path {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One problem found in a manifest: where, and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The JSON path of the offending value, e.g. `Users.Alice.Certificate`.
    pub path: String,
    /// What is wrong, in words.
    pub problem: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.problem)
    }
}

/// Collects problems while decoding and validating.
#[derive(Debug, Default)]
pub(crate) struct Problems(pub(crate) Vec<Problem>);

impl Problems {
    pub(crate) fn add(&mut self, path: &Path, problem: impl Into<String>) {
        self.0.push(Problem {
            path: path.as_str().to_owned(),
            problem: problem.into(),
        });
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A JSON object being decoded as a Go struct.
pub(crate) struct Obj<'a> {
    pub(crate) path: Path,
    map: &'a Map<String, Value>,
}

impl<'a> Obj<'a> {
    /// Reads `v` as a struct-like object; `None` (with a problem recorded) when it is not an object.
    pub(crate) fn new(v: &'a Value, path: Path, p: &mut Problems) -> Option<Obj<'a>> {
        match v {
            Value::Object(map) => {
                let obj = Obj { path, map };
                obj.check_case_duplicates(p);
                Some(obj)
            }
            Value::Null => None,
            other => {
                p.add(&path, format!("expected an object, found {}", kind(other)));
                None
            }
        }
    }

    fn check_case_duplicates(&self, p: &mut Problems) {
        let mut seen: Vec<(String, &str)> = Vec::new();
        for key in self.map.keys() {
            let lower = key.to_lowercase();
            if let Some((_, first)) = seen.iter().find(|(l, _)| *l == lower) {
                p.add(
                    &self.path,
                    format!("field given twice with different case ({first:?} and {key:?}); keep one"),
                );
            } else {
                seen.push((lower, key));
            }
        }
    }

    /// The value of field `name` (case-insensitive), if present and not null.
    pub(crate) fn field(&self, name: &str) -> Option<(&'a Value, Path)> {
        let (key, value) = self
            .map
            .get_key_value(name)
            .or_else(|| self.map.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)))?;
        if value.is_null() {
            return None;
        }
        Some((value, self.path.key(key)))
    }

    pub(crate) fn bool(&self, name: &str, p: &mut Problems) -> bool {
        match self.field(name) {
            None => false,
            Some((Value::Bool(b), _)) => *b,
            Some((other, path)) => {
                p.add(&path, format!("expected true or false, found {}", kind(other)));
                false
            }
        }
    }

    pub(crate) fn string(&self, name: &str, p: &mut Problems) -> Option<String> {
        let (v, path) = self.field(name)?;
        as_string(v, &path, p)
    }

    /// An unsigned integer (Go `uint`/`uint64`): no sign, no fraction, no string.
    pub(crate) fn uint(&self, name: &str, p: &mut Problems) -> Option<u64> {
        let (v, path) = self.field(name)?;
        as_uint(v, &path, p)
    }

    pub(crate) fn strings(&self, name: &str, p: &mut Problems) -> Option<Vec<String>> {
        let (v, path) = self.field(name)?;
        as_strings(v, &path, p)
    }

    /// A Go `[]byte`: a base64 string (standard alphabet, padded).
    pub(crate) fn bytes(&self, name: &str, p: &mut Problems) -> Option<Vec<u8>> {
        use base64::Engine as _;
        let (v, path) = self.field(name)?;
        let s = as_string(v, &path, p)?;
        match base64::engine::general_purpose::STANDARD.decode(s.as_bytes()) {
            Ok(b) => Some(b),
            Err(e) => {
                p.add(&path, format!("expected base64 (a Go []byte), {e}"));
                None
            }
        }
    }

    /// A JSON object used as a Go map: its entries in key order.
    pub(crate) fn map(&self, name: &str, p: &mut Problems) -> Vec<(&'a str, &'a Value, Path)> {
        match self.field(name) {
            None => Vec::new(),
            Some((v, path)) => entries(v, &path, p),
        }
    }
}

/// The entries of a JSON object used as a Go map (exact keys).
pub(crate) fn entries<'a>(v: &'a Value, path: &Path, p: &mut Problems) -> Vec<(&'a str, &'a Value, Path)> {
    match v {
        Value::Object(map) => map.iter().map(|(k, v)| (k.as_str(), v, path.key(k))).collect(),
        Value::Null => Vec::new(),
        other => {
            p.add(path, format!("expected an object, found {}", kind(other)));
            Vec::new()
        }
    }
}

fn describe(v: &Value) -> String {
    match v {
        Value::Number(n) => format!("{n}"),
        Value::String(s) => format!("the string {s:?}"),
        other => kind(other).to_owned(),
    }
}

pub(crate) fn as_string(v: &Value, path: &Path, p: &mut Problems) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        other => {
            p.add(path, format!("expected a string, found {}", kind(other)));
            None
        }
    }
}

pub(crate) fn as_uint(v: &Value, path: &Path, p: &mut Problems) -> Option<u64> {
    match v.as_u64() {
        Some(n) => Some(n),
        None => {
            p.add(
                path,
                format!("expected an unsigned integer, found {}", describe(v)),
            );
            None
        }
    }
}

pub(crate) fn as_strings(v: &Value, path: &Path, p: &mut Problems) -> Option<Vec<String>> {
    match v {
        Value::Array(items) => Some(
            items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| as_string(item, &path.index(i), p))
                .collect(),
        ),
        other => {
            p.add(
                path,
                format!("expected an array of strings, found {}", kind(other)),
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_quote_names_that_are_not_identifiers() {
        let p = Path::root().key("Marbles").key("a.b").key("Files").key("/tmp/x");
        assert_eq!(p.as_str(), r#"Marbles["a.b"].Files["/tmp/x"]"#);
        assert_eq!(Path::root().key("X").index(2).as_str(), "X[2]");
    }

    #[test]
    fn fields_match_case_insensitively_preferring_exact_case() {
        let v: Value = serde_json::json!({"debug": true, "PRODUCTID": 3});
        let mut p = Problems::default();
        let o = Obj::new(&v, Path::root(), &mut p).unwrap();
        assert!(o.bool("Debug", &mut p));
        assert_eq!(o.uint("ProductID", &mut p), Some(3));
        assert!(p.0.is_empty());
    }

    #[test]
    fn refuses_fields_that_differ_only_in_case() {
        let v: Value = serde_json::json!({"Debug": true, "debug": false});
        let mut p = Problems::default();
        Obj::new(&v, Path::root().key("Packages").key("x"), &mut p).unwrap();
        assert_eq!(p.0.len(), 1);
        assert_eq!(p.0[0].path, "Packages.x");
    }

    #[test]
    fn refuses_negative_fractional_and_string_integers() {
        let v: Value = serde_json::json!({"a": -1, "b": 1.5, "c": "2"});
        let mut p = Problems::default();
        let o = Obj::new(&v, Path::root(), &mut p).unwrap();
        assert_eq!(o.uint("a", &mut p), None);
        assert_eq!(o.uint("b", &mut p), None);
        assert_eq!(o.uint("c", &mut p), None);
        assert_eq!(p.0.len(), 3);
    }
}
