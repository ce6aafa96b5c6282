//! Swift cannot be compiled here, so this checks the next best thing: every name the
//! idiomatic Swift layer (ios/Sources/Braid) takes from the generated bindings exists in
//! the generated Swift file, with the argument labels it is called with.
//!
//! What counts as "taken from the bindings" is a convention the layer follows:
//! - `BraidFFI.Name` (a type, a free function, or `BraidFFI.Type.member`);
//! - `ffi.method(label: ...)`: generated objects are held in properties named `ffi`;
//! - `case .name` patterns: enum cases (of the generated enums or the layer's own).

use crate::sh::Result;
use std::collections::{BTreeSet, HashMap};
use std::path::Path;

/// A callable: its external argument labels, and which of them may be left out.
#[derive(Clone, Debug)]
struct Callable {
    labels: Vec<String>,
    optional: Vec<bool>,
}

impl Callable {
    /// The call passes `labels` in order, leaves out only defaulted ones.
    fn accepts(&self, labels: &[String]) -> bool {
        let mut i = 0;
        for l in labels {
            while i < self.labels.len() && &self.labels[i] != l {
                if !self.optional[i] {
                    return false;
                }
                i += 1;
            }
            if i == self.labels.len() {
                return false;
            }
            i += 1;
        }
        self.optional[i..].iter().all(|o| *o)
    }
}

#[derive(Default, Debug)]
struct Api {
    types: BTreeSet<String>,
    funcs: HashMap<String, Vec<Callable>>,
    inits: HashMap<String, Vec<Callable>>,
    cases: BTreeSet<String>,
    members: BTreeSet<String>,
}

/// Removes comments and string literals (their content is not code).
fn strip(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            i += 2;
            while i < b.len() && !b[i..].starts_with(b"*/") {
                i += 1;
            }
            i += 2;
        } else if b[i] == b'"' {
            out.push_str("\"\"");
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
        } else {
            out.push(b[i] as char);
            i += 1;
        }
    }
    out
}

fn ident_at(s: &str, at: usize) -> &str {
    let end = s[at..]
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .map_or(s.len(), |n| at + n);
    &s[at..end]
}

/// The text between the `(` at `open` and its matching `)`.
fn parens(s: &str, open: usize) -> Option<&str> {
    let mut depth = 0;
    for (i, c) in s[open..].char_indices() {
        match c {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(&s[open + 1..open + i]);
                }
            }
            _ => {}
        }
    }
    None
}

/// Splits at commas outside brackets.
fn top_level_commas(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' | '[' | '{' | '<' => depth += 1,
            ')' | ']' | '}' | '>' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if !s[start..].trim().is_empty() {
        out.push(&s[start..]);
    }
    out
}

/// Parameters of a declaration: `label name: T = d` or `name: T`.
fn declared(params: &str) -> Callable {
    let mut c = Callable {
        labels: Vec::new(),
        optional: Vec::new(),
    };
    for p in top_level_commas(params) {
        let head = p.split(':').next().unwrap_or("").trim();
        let label = head.split_whitespace().next().unwrap_or("_");
        c.labels.push(label.to_string());
        c.optional.push(p.contains('='));
    }
    c
}

/// Labels at a call site (`_` for an unlabelled argument).
fn call_labels(args: &str) -> Vec<String> {
    top_level_commas(args)
        .into_iter()
        .map(|a| {
            let a = a.trim();
            match a.find(':') {
                Some(n) if a[..n].chars().all(|c| c.is_alphanumeric() || c == '_') => {
                    a[..n].to_string()
                }
                _ => "_".to_string(),
            }
        })
        .collect()
}

fn parse_generated(src: &str) -> Api {
    let s = strip(src);
    let b = s.as_bytes();
    let mut api = Api::default();
    // Open type declarations: (name, brace depth inside its body).
    let mut scopes: Vec<(String, usize)> = Vec::new();
    let mut pending_type: Option<String> = None;
    let mut depth = 0usize;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'{' => {
                depth += 1;
                if let Some(t) = pending_type.take() {
                    scopes.push((t, depth));
                }
                i += 1;
                continue;
            }
            b'}' => {
                if scopes.last().is_some_and(|(_, d)| *d == depth) {
                    scopes.pop();
                }
                depth = depth.saturating_sub(1);
                i += 1;
                continue;
            }
            c if !(c.is_ascii_alphabetic() || c == b'_') => {
                i += 1;
                continue;
            }
            _ => {}
        }
        let word = ident_at(&s, i);
        let after = i + word.len();
        let preceded = i > 0 && {
            let p = b[i - 1];
            p.is_ascii_alphanumeric() || p == b'_' || p == b'.'
        };
        i = after;
        if preceded {
            continue;
        }
        match word {
            "class" | "struct" | "enum" | "protocol" | "extension" => {
                let name = ident_at(&s, after + 1);
                if !name.is_empty() {
                    api.types.insert(name.to_string());
                    pending_type = Some(name.to_string());
                }
            }
            "func" => {
                let name = ident_at(&s, after + 1);
                let open = after + 1 + name.len();
                if s[open..].starts_with('(')
                    && let Some(p) = parens(&s, open)
                {
                    api.funcs
                        .entry(name.to_string())
                        .or_default()
                        .push(declared(p));
                }
            }
            "init" if s[after..].starts_with('(') => {
                if let (Some(p), Some((t, _))) = (parens(&s, after), scopes.last()) {
                    api.inits.entry(t.clone()).or_default().push(declared(p));
                }
            }
            "case" => {
                let name = ident_at(&s, after + 1);
                if name.chars().next().is_some_and(char::is_alphabetic) {
                    api.cases.insert(name.to_string());
                }
            }
            "var" | "let" => {
                let name = ident_at(&s, after + 1);
                if !name.is_empty() {
                    api.members.insert(name.to_string());
                }
            }
            _ => {}
        }
    }
    api
}

/// Names a source declares are not from the bindings: `// ffi-check: not-ffi a b c`.
fn not_ffi(src: &str) -> BTreeSet<String> {
    src.lines()
        .filter_map(|l| l.trim().strip_prefix("// ffi-check: not-ffi "))
        .flat_map(|l| l.split_whitespace().map(str::to_string))
        .collect()
}

/// Problems with one Swift source of the layer, against the generated API.
fn check_source(api: &Api, layer_cases: &BTreeSet<String>, file: &str, src: &str) -> Vec<String> {
    let ignored = not_ffi(src);
    let s = strip(src);
    let mut bad = Vec::new();
    let call = |name: &str, at: usize, table: Option<&Vec<Callable>>| -> Option<String> {
        let args = parens(&s, at)?;
        let labels = call_labels(args);
        match table {
            Some(cs) if cs.iter().any(|c| c.accepts(&labels)) => None,
            Some(_) => Some(format!(
                "{file}: {name}({}) has no such labels",
                labels.join(":")
            )),
            None => Some(format!("{file}: {name} is not in the generated Swift")),
        }
    };
    for (i, _) in s.match_indices("BraidFFI.") {
        let name = ident_at(&s, i + 9);
        let after = i + 9 + name.len();
        if s[after..].starts_with('(') {
            let table = if api.types.contains(name) {
                api.inits.get(name)
            } else {
                api.funcs.get(name)
            };
            bad.extend(call(&format!("BraidFFI.{name}"), after, table));
        } else if !api.types.contains(name) {
            bad.push(format!(
                "{file}: type BraidFFI.{name} is not in the generated Swift"
            ));
        } else if s[after..].starts_with('.') {
            let member = ident_at(&s, after + 1);
            if !(api.cases.contains(member) || api.members.contains(member) || member == "self") {
                bad.push(format!(
                    "{file}: BraidFFI.{name}.{member} is not in the generated Swift"
                ));
            }
        }
    }
    for (i, _) in s.match_indices("ffi.") {
        if i > 0 && {
            let p = s.as_bytes()[i - 1];
            p.is_ascii_alphanumeric() || p == b'_'
        } {
            continue;
        }
        let name = ident_at(&s, i + 4);
        let after = i + 4 + name.len();
        if s[after..].starts_with('(') {
            bad.extend(call(&format!("ffi.{name}"), after, api.funcs.get(name)));
        } else {
            bad.push(format!(
                "{file}: ffi.{name} is not a call (generated objects have only methods)"
            ));
        }
    }
    for (i, _) in s.match_indices("case .") {
        let name = ident_at(&s, i + 6);
        if !(api.cases.contains(name) || layer_cases.contains(name) || ignored.contains(name)) {
            bad.push(format!(
                "{file}: case .{name} is neither generated nor declared in the layer"
            ));
        }
    }
    bad
}

/// Checks every `.swift` file in `layer_dir` against the generated `generated` file.
pub fn check_dir(generated: &Path, layer_dir: &Path) -> Result {
    let api = parse_generated(&crate::ffi::read(generated)?);
    let mut sources = Vec::new();
    let entries = std::fs::read_dir(layer_dir)
        .map_err(|e| format!("cannot list {}: {e}", layer_dir.display()))?;
    for e in entries.flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "swift") {
            sources.push((p.display().to_string(), crate::ffi::read(&p)?));
        }
    }
    if sources.is_empty() {
        return Err(format!("no Swift sources in {}", layer_dir.display()));
    }
    let mut layer_cases = BTreeSet::new();
    for (_, src) in &sources {
        layer_cases.extend(parse_generated(src).cases);
    }
    let bad: Vec<String> = sources
        .iter()
        .flat_map(|(f, src)| check_source(&api, &layer_cases, f, src))
        .collect();
    if bad.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the Swift layer does not match the generated bindings:\n  {}",
            bad.join("\n  ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GENERATED: &str = r#"
        public protocol BraidClientProtocol: AnyObject {
            func connectVia(gateway: String, target: String) async throws -> BraidConnection
        }
        open class BraidClient: BraidClientProtocol {
            public struct NoHandle { public init() {} }
            public convenience init(config: BraidConfig? = nil, binder: SocketBinder? = nil) throws {}
            open func connectVia(gateway: String, target: String) async throws -> BraidConnection {}
            open func interfaceLost(pathId: UInt32) {}
        }
        public struct BraidInterface {
            public var kind: InterfaceKind
            public init(kind: InterfaceKind, name: String? = nil, index: UInt32? = nil) {}
        }
        public enum BraidEvent { case connected
            case pathSwitched(fromPath: UInt32?, toPath: UInt32) }
        public enum InterfaceKind { case wifi
            case cellular }
        public func initLogging(level: LogLevel, sink: LogSink? = nil) throws {}
    "#;

    fn problems(layer: &str) -> Vec<String> {
        let api = parse_generated(GENERATED);
        let cases = parse_generated(layer).cases;
        check_source(&api, &cases, "layer.swift", layer)
    }

    #[test]
    fn matching_layer_passes() {
        let layer = r#"
            let ffi = try BraidFFI.BraidClient(config: nil)
            let c = try await ffi.connectVia(gateway: g, target: t) // ffi.gone(x:)
            ffi.interfaceLost(pathId: 3)
            let i = BraidFFI.BraidInterface(kind: BraidFFI.InterfaceKind.wifi, index: 4)
            try BraidFFI.initLogging(level: l)
            switch e { case .pathSwitched(let a, let b): break; case .mine: break }
            enum Mine { case mine }
            let s = "ffi.nothing(here:)"
            switch t { case .wiredEthernet: break }
            // ffi-check: not-ffi wiredEthernet
        "#;
        assert_eq!(problems(layer), Vec::<String>::new());
    }

    #[test]
    fn mismatches_are_reported() {
        let layer = r#"
            let c = try await ffi.connect(via: g, target: t)
            ffi.interfaceLost(3)
            let i = BraidFFI.BraidInterface(name: "en0")
            let k = BraidFFI.InterfaceKind.ethernet
            let x: BraidFFI.Missing
            switch e { case .pathChanged: break }
        "#;
        let p = problems(layer);
        assert_eq!(p.len(), 6, "{p:#?}");
        assert!(p[0].contains("BraidFFI.BraidInterface(name)"), "{p:#?}");
    }
}
