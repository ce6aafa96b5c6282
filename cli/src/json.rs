//! A small JSON writer (objects, arrays, strings, numbers) for `--json` output.

use std::fmt::Write;

/// A JSON value to print.
#[derive(Clone, Debug, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Int(i128),
    Num(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    pub fn obj() -> Self {
        Json::Obj(Vec::new())
    }

    /// Adds a field (to an object; ignored otherwise).
    pub fn with(mut self, key: &str, v: impl Into<Json>) -> Self {
        if let Json::Obj(f) = &mut self {
            f.push((key.to_string(), v.into()));
        }
        self
    }

    pub fn to_string_pretty(&self) -> String {
        let mut s = String::new();
        self.write(&mut s, 0);
        s
    }

    fn write(&self, s: &mut String, indent: usize) {
        match self {
            Json::Null => s.push_str("null"),
            Json::Bool(b) => s.push_str(if *b { "true" } else { "false" }),
            Json::Int(i) => {
                let _ = write!(s, "{i}");
            }
            Json::Num(n) if n.is_finite() => {
                // Enough digits for measurements, no exponent surprises.
                let mut t = format!("{n:.6}");
                while t.ends_with('0') {
                    t.pop();
                }
                if t.ends_with('.') {
                    t.pop();
                }
                if t == "-0" {
                    t = "0".into();
                }
                s.push_str(&t);
            }
            Json::Num(_) => s.push_str("null"),
            Json::Str(v) => escape(s, v),
            Json::Arr(a) => {
                // Arrays of numbers stay on one line (samples).
                let flat = a
                    .iter()
                    .all(|v| matches!(v, Json::Int(_) | Json::Num(_) | Json::Null));
                s.push('[');
                for (i, v) in a.iter().enumerate() {
                    if i > 0 {
                        s.push(',');
                    }
                    if !flat {
                        newline(s, indent + 1);
                    }
                    v.write(s, indent + 1);
                }
                if !flat && !a.is_empty() {
                    newline(s, indent);
                }
                s.push(']');
            }
            Json::Obj(f) => {
                s.push('{');
                for (i, (k, v)) in f.iter().enumerate() {
                    if i > 0 {
                        s.push(',');
                    }
                    newline(s, indent + 1);
                    escape(s, k);
                    s.push_str(": ");
                    v.write(s, indent + 1);
                }
                if !f.is_empty() {
                    newline(s, indent);
                }
                s.push('}');
            }
        }
    }
}

fn newline(s: &mut String, indent: usize) {
    s.push('\n');
    for _ in 0..indent {
        s.push_str("  ");
    }
}

fn escape(s: &mut String, v: &str) {
    s.push('"');
    for c in v.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            '\r' => s.push_str("\\r"),
            '\t' => s.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(s, "\\u{:04x}", c as u32);
            }
            c => s.push(c),
        }
    }
    s.push('"');
}

impl From<bool> for Json {
    fn from(v: bool) -> Self {
        Json::Bool(v)
    }
}
impl From<u64> for Json {
    fn from(v: u64) -> Self {
        Json::Int(v as i128)
    }
}
impl From<u32> for Json {
    fn from(v: u32) -> Self {
        Json::Int(v as i128)
    }
}
impl From<usize> for Json {
    fn from(v: usize) -> Self {
        Json::Int(v as i128)
    }
}
impl From<f64> for Json {
    fn from(v: f64) -> Self {
        Json::Num(v)
    }
}
impl From<&str> for Json {
    fn from(v: &str) -> Self {
        Json::Str(v.to_string())
    }
}
impl From<String> for Json {
    fn from(v: String) -> Self {
        Json::Str(v)
    }
}
impl<T: Into<Json>> From<Option<T>> for Json {
    fn from(v: Option<T>) -> Self {
        v.map_or(Json::Null, Into::into)
    }
}
impl<T: Into<Json>> From<Vec<T>> for Json {
    fn from(v: Vec<T>) -> Self {
        Json::Arr(v.into_iter().map(Into::into).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_valid_json() {
        let j = Json::obj()
            .with("name", "a \"b\"\n\u{1}")
            .with("n", 3u64)
            .with("x", 2.5f64)
            .with("nan", f64::NAN)
            .with("list", vec![1u64, 2, 3])
            .with("objs", vec![Json::obj().with("k", true)])
            .with("none", Option::<u64>::None)
            .with("empty", Json::obj());
        let s = j.to_string_pretty();
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["name"], "a \"b\"\n\u{1}");
        assert_eq!(v["n"], 3);
        assert_eq!(v["x"], 2.5);
        assert!(v["nan"].is_null());
        assert_eq!(v["list"][2], 3);
        assert_eq!(v["objs"][0]["k"], true);
        assert!(v["none"].is_null());
        assert_eq!(Json::Num(0.1).to_string_pretty(), "0.1");
        assert_eq!(Json::Num(3.0).to_string_pretty(), "3");
    }
}
