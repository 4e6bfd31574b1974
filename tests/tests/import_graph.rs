//! No import circles: within each crate, no file refers (through `use` or a
//! path such as `crate::a::b::C`, `super::x`, `child::y`) to a file that,
//! through any chain, refers back to it. A parent module that calls its
//! children holds nothing they need; shared things live in a module of
//! their own, below the ones that use them.
//!
//! The graph is built from the source text: comments and literals are
//! blanked, `use` trees and paths are read, and a name re-exported by a
//! module (`pub use x::Y`, the crate root's re-exports above all) is
//! followed to the file that defines it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// The crates whose files must not import each other in a circle.
const CRATES: [&str; 2] = ["stratasync", "stratasync-diesel"];

/// A module path inside a crate (`[]` is the crate root).
type ModPath = Vec<String>;

/// Where a name brought in by a `use` points.
#[derive(Debug, Clone)]
enum Target {
    /// Into this crate, at this absolute path.
    Internal(Vec<String>),
    /// Into another crate.
    External,
}

/// One file of a crate.
struct File {
    /// The source with comments and literals blanked.
    code: String,
    /// The bodies of inline modules (`mod tests { .. }`), as byte ranges.
    inline: Vec<(usize, usize)>,
    /// The names its top-level `use` items bring in.
    uses: HashMap<String, Target>,
}

/// Why one file refers to another: the paths that do.
type Edges = BTreeMap<ModPath, BTreeMap<ModPath, BTreeSet<String>>>;

/// Blanks comments, string and character literals, keeping byte offsets.
fn blank(source: &str) -> String {
    let bytes = source.as_bytes();
    let mut out = bytes.to_vec();
    let mut i = 0;
    let is_ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let wipe = |out: &mut Vec<u8>, from: usize, to: usize| {
        for byte in &mut out[from..to.min(bytes.len())] {
            if *byte != b'\n' {
                *byte = b' ';
            }
        }
    };
    while i < bytes.len() {
        let rest = &bytes[i..];
        let after_ident = i > 0 && is_ident(bytes[i - 1]);
        if rest.starts_with(b"//") {
            let end = rest
                .iter()
                .position(|&b| b == b'\n')
                .map_or(bytes.len(), |n| i + n);
            wipe(&mut out, i, end);
            i = end;
        } else if rest.starts_with(b"/*") {
            let (mut depth, mut j) = (1, i + 2);
            while j < bytes.len() && depth > 0 {
                if bytes[j..].starts_with(b"/*") {
                    depth += 1;
                    j += 2;
                } else if bytes[j..].starts_with(b"*/") {
                    depth -= 1;
                    j += 2;
                } else {
                    j += 1;
                }
            }
            wipe(&mut out, i, j);
            i = j;
        } else if !after_ident && (rest.starts_with(b"r#") || rest.starts_with(b"r\"")) {
            let hashes = rest[1..].iter().take_while(|&&b| b == b'#').count();
            if rest.get(1 + hashes) != Some(&b'"') {
                i += 1;
                continue;
            }
            let mut close = vec![b'"'];
            close.extend(std::iter::repeat_n(b'#', hashes));
            let start = i + 2 + hashes;
            let end = bytes[start..]
                .windows(close.len())
                .position(|w| w == close.as_slice())
                .map_or(bytes.len(), |n| start + n + close.len());
            wipe(&mut out, i, end);
            i = end;
        } else if rest[0] == b'"' {
            let mut j = i + 1;
            while j < bytes.len() && bytes[j] != b'"' {
                j += if bytes[j] == b'\\' { 2 } else { 1 };
            }
            wipe(&mut out, i, j + 1);
            i = j + 1;
        } else if rest[0] == b'\'' {
            // A character literal, or a lifetime (left as it is).
            let end = if rest.get(1) == Some(&b'\\') {
                rest[2..]
                    .iter()
                    .position(|&b| b == b'\'')
                    .map(|n| i + 3 + n)
            } else {
                let width = source[i + 1..].chars().next().map_or(1, char::len_utf8);
                (rest.get(1 + width) == Some(&b'\'')).then_some(i + 2 + width)
            };
            match end {
                Some(end) => {
                    wipe(&mut out, i, end);
                    i = end;
                }
                None => i += 1,
            }
        } else {
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The identifier at `at`, if one starts there.
fn ident_at(code: &str, at: usize) -> Option<&str> {
    let len = code[at..]
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(code.len() - at);
    let ident = &code[at..at + len];
    (len > 0 && !ident.as_bytes()[0].is_ascii_digit()).then_some(ident)
}

fn skip_space(code: &str, at: usize) -> usize {
    at + code[at..].len() - code[at..].trim_start().len()
}

/// The leaves of the use tree or path at `at`, each with the name it binds
/// (its last segment or its `as` alias), and where the tree ends.
fn paths_at(code: &str, at: usize) -> (Vec<(Vec<String>, String)>, usize) {
    fn tree(
        code: &str,
        at: usize,
        prefix: &[String],
        out: &mut Vec<(Vec<String>, String)>,
    ) -> usize {
        let mut at = skip_space(code, at);
        if code[at..].starts_with('{') {
            at += 1;
            loop {
                at = skip_space(code, at);
                if at >= code.len() || code[at..].starts_with('}') {
                    return at + 1;
                }
                at = tree(code, at, prefix, out);
                at = skip_space(code, at);
                if code[at..].starts_with(',') {
                    at += 1;
                } else if !code[at..].starts_with('}') {
                    return at;
                }
            }
        }
        if code[at..].starts_with('*') {
            out.push((prefix.to_vec(), "*".to_owned()));
            return at + 1;
        }
        let Some(segment) = ident_at(code, at) else {
            return at;
        };
        let mut path = prefix.to_vec();
        path.push(segment.to_owned());
        at += segment.len();
        if code[at..].starts_with("::") {
            return tree(code, at + 2, &path, out);
        }
        let mut name = segment.to_owned();
        let after = skip_space(code, at);
        if code[after..].starts_with("as ") {
            let alias_at = skip_space(code, after + 3);
            if let Some(alias) = ident_at(code, alias_at) {
                name = alias.to_owned();
                at = alias_at + alias.len();
            }
        }
        out.push((path, name));
        at
    }
    let mut out = Vec::new();
    let end = tree(code, at, &[], &mut out);
    (out, end)
}

/// The bodies of the inline modules of `code`.
fn inline_modules(code: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    for (at, _) in code.match_indices("mod ") {
        if at > 0 && code.as_bytes()[at - 1].is_ascii_alphanumeric() {
            continue;
        }
        let name_at = skip_space(code, at + 4);
        let Some(name) = ident_at(code, name_at) else {
            continue;
        };
        let open = skip_space(code, name_at + name.len());
        if !code[open..].starts_with('{') {
            continue;
        }
        let mut depth = 0;
        for (offset, c) in code[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                _ => {}
            }
            if depth == 0 {
                spans.push((open + 1, open + offset));
                break;
            }
        }
    }
    spans
}

/// A crate's files by module path.
struct Crate {
    files: BTreeMap<ModPath, File>,
    /// `#[macro_export]` macros: invoked as `crate::name!`, defined in a file.
    macros: HashMap<String, ModPath>,
}

impl Crate {
    /// Reads `sources` (paths relative to `src/`, and their text).
    fn new(sources: &[(PathBuf, String)]) -> Crate {
        let mut files = BTreeMap::new();
        let mut macros = HashMap::new();
        for (path, source) in sources {
            let mut module: ModPath = path
                .with_extension("")
                .iter()
                .map(|part| part.to_string_lossy().into_owned())
                .collect();
            if matches!(
                module.last().map(String::as_str),
                Some("lib" | "main" | "mod")
            ) {
                module.pop();
            }
            let code = blank(source);
            for (at, _) in code.match_indices("#[macro_export]") {
                let rest = &code[at..];
                if let Some(found) = rest.find("macro_rules!") {
                    let name_at = skip_space(rest, found + "macro_rules!".len());
                    if let Some(name) = ident_at(rest, name_at) {
                        macros.insert(name.to_owned(), module.clone());
                    }
                }
            }
            let inline = inline_modules(&code);
            files.insert(
                module,
                File {
                    code,
                    inline,
                    uses: HashMap::new(),
                },
            );
        }
        let mut krate = Crate { files, macros };
        let modules: Vec<ModPath> = krate.files.keys().cloned().collect();
        for module in modules {
            let file = &krate.files[&module];
            let mut uses = HashMap::new();
            for (at, _) in file.code.match_indices("use ") {
                if file.nesting(at) > 0 || !starts_word(&file.code, at) {
                    continue;
                }
                for (path, name) in paths_at(&file.code, at + 4).0 {
                    let target = match krate.absolute(&module, &path, 0) {
                        Some(path) => Target::Internal(path),
                        None => Target::External,
                    };
                    uses.insert(name, target);
                }
            }
            if let Some(file) = krate.files.get_mut(&module) {
                file.uses = uses;
            }
        }
        krate
    }

    /// `path` as written in `module` (inside `inline` nested inline
    /// modules), made absolute; `None` when it leaves the crate or stays in
    /// an inline module.
    fn absolute(&self, module: &ModPath, path: &[String], inline: usize) -> Option<ModPath> {
        let first = path.first()?;
        match first.as_str() {
            "crate" => Some(path[1..].to_vec()),
            "self" | "super" => {
                let mut base = module.clone();
                let mut rest = path;
                let mut inline = inline;
                if first == "self" {
                    rest = &rest[1..];
                }
                while rest.first().is_some_and(|s| s == "super") {
                    if inline > 0 {
                        inline -= 1;
                    } else {
                        base.pop()?;
                    }
                    rest = &rest[1..];
                }
                (inline == 0).then(|| base.into_iter().chain(rest.iter().cloned()).collect())
            }
            _ if inline > 0 => None,
            _ => {
                let mut child = module.clone();
                child.push(first.clone());
                if self.files.contains_key(&child) {
                    return Some(module.iter().chain(path).cloned().collect());
                }
                match self.files.get(module).and_then(|file| file.uses.get(first)) {
                    Some(Target::Internal(target)) => {
                        Some(target.iter().chain(&path[1..]).cloned().collect())
                    }
                    _ => None,
                }
            }
        }
    }

    /// The file an absolute path points into, following re-exports.
    fn resolve(&self, path: &[String], depth: usize) -> Option<ModPath> {
        let mut module = ModPath::new();
        for (i, segment) in path.iter().enumerate() {
            let mut child = module.clone();
            child.push(segment.clone());
            if self.files.contains_key(&child) {
                module = child;
                continue;
            }
            if module.is_empty()
                && let Some(defined) = self.macros.get(segment)
            {
                return Some(defined.clone());
            }
            return match self.files[&module].uses.get(segment) {
                Some(Target::Internal(target)) if depth < 16 => {
                    let next: Vec<String> = target.iter().chain(&path[i + 1..]).cloned().collect();
                    self.resolve(&next, depth + 1)
                }
                Some(_) => None,
                None => Some(module),
            };
        }
        Some(module)
    }

    /// Every file-to-file reference, with the paths that make it.
    fn edges(&self) -> Edges {
        let mut edges = Edges::new();
        for (module, file) in &self.files {
            let targets = edges.entry(module.clone()).or_default();
            let code = &file.code;
            let mut read_until = 0;
            for (at, _) in code.match_indices("::") {
                // The first segment of a path: an identifier before `::`
                // that is not itself after `::`, nor inside a tree read.
                let start = code[..at]
                    .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .map_or(0, |n| n + 1);
                if start == at || start < read_until || code[..start].ends_with("::") {
                    continue;
                }
                let (paths, end) = paths_at(code, start);
                read_until = end;
                for (path, _) in paths {
                    let Some(absolute) = self.absolute(module, &path, file.nesting(start)) else {
                        continue;
                    };
                    let Some(target) = self.resolve(&absolute, 0) else {
                        continue;
                    };
                    if &target != module {
                        targets.entry(target).or_default().insert(path.join("::"));
                    }
                }
            }
        }
        edges
    }
}

impl File {
    /// How many inline modules enclose byte `at`.
    fn nesting(&self, at: usize) -> usize {
        self.inline
            .iter()
            .filter(|(start, end)| (*start..*end).contains(&at))
            .count()
    }
}

fn starts_word(code: &str, at: usize) -> bool {
    at == 0 || !code.as_bytes()[at - 1].is_ascii_alphanumeric() && code.as_bytes()[at - 1] != b'_'
}

fn name(module: &ModPath) -> String {
    if module.is_empty() {
        "lib".to_owned()
    } else {
        module.join("::")
    }
}

/// One circle of each strongly connected set of files, written out with
/// the paths that make each step.
fn circles(edges: &Edges) -> Vec<String> {
    // Tarjan's strongly connected components.
    struct Walk<'a> {
        edges: &'a Edges,
        index: HashMap<&'a ModPath, usize>,
        low: HashMap<&'a ModPath, usize>,
        stack: Vec<&'a ModPath>,
        sets: Vec<Vec<&'a ModPath>>,
    }
    impl<'a> Walk<'a> {
        fn visit(&mut self, node: &'a ModPath) {
            let index = self.index.len();
            self.index.insert(node, index);
            self.low.insert(node, index);
            self.stack.push(node);
            for next in self.edges.get(node).into_iter().flat_map(BTreeMap::keys) {
                if !self.index.contains_key(next) {
                    self.visit(next);
                    let low = self.low[node].min(self.low[next]);
                    self.low.insert(node, low);
                } else if self.stack.contains(&next) {
                    let low = self.low[node].min(self.index[next]);
                    self.low.insert(node, low);
                }
            }
            if self.low[node] == self.index[node] {
                let at = self
                    .stack
                    .iter()
                    .rposition(|n| *n == node)
                    .expect("on the stack");
                let set = self.stack.split_off(at);
                if set.len() > 1 {
                    self.sets.push(set);
                }
            }
        }
    }
    let mut walk = Walk {
        edges,
        index: HashMap::new(),
        low: HashMap::new(),
        stack: Vec::new(),
        sets: Vec::new(),
    };
    for node in edges.keys() {
        if !walk.index.contains_key(node) {
            walk.visit(node);
        }
    }
    walk.sets
        .iter()
        .map(|set| {
            // A shortest way back from the set's first file to itself.
            let start = set[0];
            let mut previous: HashMap<&ModPath, &ModPath> = HashMap::new();
            let mut queue = std::collections::VecDeque::from([start]);
            let mut last = start;
            'search: while let Some(node) = queue.pop_front() {
                for next in edges[node].keys() {
                    if !set.contains(&next) {
                        continue;
                    }
                    if next == start {
                        last = node;
                        break 'search;
                    }
                    if !previous.contains_key(next) {
                        previous.insert(next, node);
                        queue.push_back(next);
                    }
                }
            }
            let mut circle = vec![last];
            while let Some(&before) = circle.last().filter(|n| **n != start).map(|n| &previous[n]) {
                circle.push(before);
            }
            circle.reverse();
            circle.push(start);
            let steps: Vec<String> = circle
                .windows(2)
                .map(|step| {
                    let via: Vec<&str> = edges[step[0]][step[1]]
                        .iter()
                        .map(String::as_str)
                        .take(3)
                        .collect();
                    format!(
                        "  {} -> {}   ({})",
                        name(step[0]),
                        name(step[1]),
                        via.join(", ")
                    )
                })
                .collect();
            let members: Vec<String> = set.iter().map(|m| name(m)).collect();
            format!(
                "circle among [{}]:\n{}",
                members.join(", "),
                steps.join("\n")
            )
        })
        .collect()
}

fn sources(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(&next).expect("read src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("read source");
                let relative = path.strip_prefix(dir).expect("under src").to_path_buf();
                out.push((relative, text));
            }
        }
    }
    out
}

#[test]
fn no_file_imports_a_file_that_imports_it() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut found = Vec::new();
    for krate in CRATES {
        let files = sources(&workspace.join(krate).join("src"));
        assert!(files.len() > 5, "{krate}: no sources found");
        for circle in circles(&Crate::new(&files).edges()) {
            found.push(format!("{krate}: {circle}"));
        }
    }
    assert!(found.is_empty(), "import circles:\n{}", found.join("\n"));
}

fn graph_of(files: &[(&str, &str)]) -> Edges {
    let files: Vec<(PathBuf, String)> = files
        .iter()
        .map(|(path, text)| (PathBuf::from(path), (*text).to_owned()))
        .collect();
    Crate::new(&files).edges()
}

#[test]
fn the_check_sees_circles_through_uses_paths_and_re_exports() {
    // Through a re-export of the root, a parent and its child.
    let edges = graph_of(&[
        ("lib.rs", "mod a; mod b; pub use b::Thing;"),
        ("a/mod.rs", "mod c; pub fn f() { c::g() }"),
        ("a/c.rs", "use crate::Thing; pub fn g() {}"),
        (
            "b.rs",
            "pub struct Thing; fn h() { crate::a::f() } // crate::x::y\n",
        ),
    ]);
    let found = circles(&edges);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("a -> a::c"), "{}", found[0]);
    assert!(
        found[0].contains("a::c -> b   (crate::Thing)"),
        "{}",
        found[0]
    );
    assert!(found[0].contains("b -> a   (crate::a::f)"), "{}", found[0]);

    // Through `super`, a grouped `use` and an alias.
    let edges = graph_of(&[
        ("lib.rs", "mod p;"),
        (
            "p/mod.rs",
            "mod q; use self::q::{Q as Alias, other}; pub struct P;",
        ),
        ("p/q.rs", "pub struct Q(super::P); pub fn other() {}"),
    ]);
    assert_eq!(circles(&edges).len(), 1);

    // Not a circle: a test module's `super`, a literal, another crate.
    let edges = graph_of(&[
        ("lib.rs", "mod a; mod b; pub use a::A;"),
        (
            "a.rs",
            "pub struct A; fn s() -> &'static str { \"crate::b::B\" }",
        ),
        (
            "b.rs",
            "use crate::A; use serde::Serialize; \
             #[cfg(test)] mod tests { use super::*; fn t() { let _ = super::super::A; } }",
        ),
    ]);
    assert_eq!(circles(&edges), Vec::<String>::new());
}
