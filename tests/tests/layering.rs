//! The workspace's architecture rules, checked by reading the source tree: file size, where `unsafe` may appear, who imports the daemon's `api` module, and no import cycles between a crate's modules.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
const CRATES: [&str; 6] = ["registry-spec", "gguf", "kernels", "daemon", "cli", "tests"];
const MAX_LINES: usize = 800;

/// A source file: its path from the workspace root, its text, and its code
/// (comments and the contents of string and char literals removed, line breaks kept).
struct Source {
    rel: String,
    text: String,
    code: String,
}

/// Every `.rs` file under `dir` (a path from the workspace root, `target/` skipped), sorted.
fn sources(dir: &str) -> Vec<Source> {
    let root = Path::new(ROOT);
    let (mut dirs, mut files) = (vec![root.join(dir)], Vec::new());
    while let Some(d) = dirs.pop() {
        for entry in fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() && !path.ends_with("target") {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    assert!(!files.is_empty(), "no .rs files under {dir}");
    let source = |p: &PathBuf| {
        let text = fs::read_to_string(p).unwrap();
        let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
        let code = strip(&text);
        Source { rel, text, code }
    };
    files.iter().map(source).collect()
}

fn workspace() -> Vec<Source> {
    CRATES.iter().flat_map(|c| sources(c)).collect()
}

/// Fails listing every offence, if there are any.
fn check(what: &str, offences: &[String]) {
    assert!(offences.is_empty(), "{what}:\n  {}", offences.join("\n  "));
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// `text` without comments and without what string and char literals hold
/// (line breaks kept). Block comments are taken not to nest.
fn strip(text: &str) -> String {
    let s: Vec<char> = text.chars().collect();
    let at = |k: usize| s.get(k).copied();
    // Where the first `pat` at or after `from` starts, or the end.
    let find = |from: usize, pat: &str| {
        let pat: Vec<char> = pat.chars().collect();
        (from..s.len())
            .find(|&k| s[k..].starts_with(&pat))
            .unwrap_or(s.len())
    };
    let (mut out, mut i) = (String::with_capacity(text.len()), 0);
    while i < s.len() {
        let hashes = s[i + 1..].iter().take_while(|&&c| c == '#').count();
        let raw = s[i] == 'r'
            && at(i + 1 + hashes) == Some('"')
            && (i == 0
                || !is_ident(s[i - 1])
                || (s[i - 1] == 'b' && (i < 2 || !is_ident(s[i - 2]))));
        let (end, keep) = match (s[i], at(i + 1)) {
            ('/', Some('/')) => (find(i, "\n"), ""),
            ('/', Some('*')) => (find(i + 2, "*/") + 2, ""),
            _ if raw => (
                find(i + 2 + hashes, &format!("\"{}", "#".repeat(hashes))) + 1 + hashes,
                "\"\"",
            ),
            ('"', _) => {
                let mut k = i + 1;
                while k < s.len() && s[k] != '"' {
                    k += if s[k] == '\\' { 2 } else { 1 };
                }
                (k + 1, "\"\"")
            }
            ('\'', Some('\\')) => (find(i + 3, "'") + 1, "''"), // the escaped char may be a quote
            ('\'', _) if at(i + 2) == Some('\'') => (i + 3, "''"),
            (c, _) => {
                out.push(c); // code, or the quote of a lifetime
                i += 1;
                continue;
            }
        };
        let end = end.min(s.len());
        out.extend(s[i..end].iter().filter(|&&c| c == '\n'));
        out.push_str(keep);
        i = end;
    }
    out
}

/// The paths in `code` that start with one of `roots` (`crate`, `super`, ...),
/// `use` groups expanded, each with its line number.
fn paths(code: &str, roots: &[&str]) -> Vec<(usize, Vec<String>)> {
    let s: Vec<char> = code.chars().collect();
    let (mut out, mut i, mut line, mut counted) = (Vec::new(), 0, 1, 0);
    while i < s.len() {
        if !is_ident(s[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < s.len() && is_ident(s[i]) {
            i += 1;
        }
        let word: String = s[start..i].iter().collect();
        if roots.contains(&word.as_str()) && s[i..].starts_with(&[':', ':']) {
            line += s[counted..start].iter().filter(|&&c| c == '\n').count();
            counted = start;
            let mut found = Vec::new();
            i = start;
            tree(&s, &mut i, Vec::new(), &mut found);
            out.extend(found.into_iter().map(|p| (line, p)));
        }
    }
    out
}

/// Parses a path or `use` tree at `s[*i..]`, pushing each full path.
fn tree(s: &[char], i: &mut usize, mut path: Vec<String>, out: &mut Vec<Vec<String>>) {
    let skip_ws = |i: &mut usize| {
        while s.get(*i).is_some_and(|c| c.is_whitespace()) {
            *i += 1;
        }
    };
    loop {
        skip_ws(i);
        if s.get(*i) == Some(&'{') {
            *i += 1;
            loop {
                skip_ws(i);
                match s.get(*i) {
                    None | Some('}') => return *i += 1,
                    _ => tree(s, i, path.clone(), out),
                }
                // Past `as name` or `*` to the end of this item.
                while !matches!(s.get(*i), None | Some('}' | ',')) {
                    *i += 1;
                }
                if s.get(*i) == Some(&',') {
                    *i += 1;
                }
            }
        }
        let start = *i;
        while s.get(*i).is_some_and(|&c| is_ident(c)) {
            *i += 1;
        }
        if *i == start {
            return out.push(path);
        }
        let name: String = s[start..*i].iter().collect();
        if name != "self" || path.is_empty() {
            path.push(name); // `use a::{self, b}`: `self` is `a`
        }
        let end = *i;
        skip_ws(i);
        if !s[*i..].starts_with(&[':', ':']) {
            *i = end;
            return out.push(path);
        }
        *i += 2;
    }
}

/// `path` made absolute from inside `module`: `crate`/`llmpmd`, `super`, `self` resolved.
fn resolve(module: &[String], path: &[String]) -> Vec<String> {
    let mut rest = path;
    let mut out = if matches!(path[0].as_str(), "crate" | "llmpmd") {
        rest = &path[1..];
        Vec::new()
    } else {
        module.to_vec()
    };
    while let Some(first) = rest.first() {
        match first.as_str() {
            "super" => drop(out.pop()),
            "self" => {}
            _ => break,
        }
        rest = &rest[1..];
    }
    out.extend_from_slice(rest);
    out
}

/// The module path of a file under `src/`: `a/b.rs` and `a/b/mod.rs` are `a::b`.
fn module_of(rel_to_src: &str) -> Vec<String> {
    let mut m: Vec<String> = rel_to_src
        .trim_end_matches(".rs")
        .split('/')
        .map(String::from)
        .collect();
    if matches!(m.last().map(String::as_str), Some("mod" | "lib" | "main")) {
        m.pop();
    }
    m
}

#[test]
fn no_file_over_800_lines() {
    let long: Vec<String> = workspace()
        .iter()
        .filter(|s| s.text.lines().count() > MAX_LINES)
        .map(|s| format!("{}: {} lines", s.rel, s.text.lines().count()))
        .collect();
    check(&format!("files over {MAX_LINES} lines (split them)"), &long);
}

#[test]
fn unsafe_only_in_kernels_and_the_mmap() {
    let mut bad = Vec::new();
    for s in workspace() {
        if s.rel.starts_with("kernels/src/") || s.rel == "gguf/src/mmap.rs" {
            continue;
        }
        for (n, line) in s.code.lines().enumerate() {
            let keyword = line.match_indices("unsafe").any(|(k, w)| {
                !line[..k].ends_with(is_ident) && !line[k + w.len()..].starts_with(is_ident)
            });
            let allow = line.contains("unsafe_code") && line.contains("allow(");
            if keyword || allow {
                bad.push(format!("{}:{}: {}", s.rel, n + 1, line.trim()));
            }
        }
    }
    check("unsafe outside kernels/src and gguf/src/mmap.rs", &bad);
}

#[test]
fn only_the_server_imports_the_daemon_api() {
    let allowed = [
        "daemon/src/server.rs",
        "daemon/src/lib.rs",
        "daemon/src/main.rs",
    ];
    let mut bad = Vec::new();
    for s in sources("daemon/src") {
        if allowed.contains(&s.rel.as_str()) || s.rel.starts_with("daemon/src/api/") {
            continue;
        }
        let module = module_of(&s.rel["daemon/src/".len()..]);
        for (line, path) in paths(&s.code, &["crate", "super", "self", "llmpmd"]) {
            if resolve(&module, &path).first().is_some_and(|m| m == "api") {
                bad.push(format!("{}:{line}: {}", s.rel, path.join("::")));
            }
        }
    }
    let what = "the api module imported outside server.rs, lib.rs, main.rs and api/";
    check(what, &bad);
}

type Module = Vec<String>;

/// The code of `s` before its first `#[cfg(test)] mod ... {`, and the
/// modules it declares with `#[cfg(test)] mod name;`.
fn non_test_code(s: &Source) -> (String, Vec<String>) {
    let lines: Vec<&str> = s.code.lines().collect();
    let mut test_mods = Vec::new();
    for (n, line) in lines.iter().enumerate() {
        if line.trim() != "#[cfg(test)]" {
            continue;
        }
        let item = lines[n + 1..]
            .iter()
            .map(|l| l.trim())
            .find(|l| !l.is_empty() && !l.starts_with("#["));
        let item = item.map(|l| {
            l.trim_start_matches("pub(crate) ")
                .trim_start_matches("pub ")
        });
        match item
            .and_then(|l| l.strip_prefix("mod "))
            .map(|d| d.strip_suffix(';'))
        {
            Some(Some(name)) => test_mods.push(name.trim().to_string()),
            Some(None) => return (lines[..n].join("\n"), test_mods),
            None => {}
        }
    }
    (s.code.clone(), test_mods)
}

/// Sibling-module edges of one crate's `src/`, each with one example reference.
fn module_edges(src: &str) -> BTreeMap<(Module, Module), String> {
    let mut files = Vec::new();
    let mut test_only = BTreeSet::new();
    for s in sources(src) {
        let rel = &s.rel[src.len() + 1..];
        if rel.starts_with("bin/") {
            continue;
        }
        let module = module_of(rel);
        let (code, test_mods) = non_test_code(&s);
        test_only.extend(test_mods.into_iter().map(|m| [&module[..], &[m]].concat()));
        files.push((module, s.rel, code));
    }
    let modules: BTreeSet<Module> = files.iter().map(|f| f.0.clone()).collect();
    let mut edges = BTreeMap::new();
    for (module, rel, code) in &files {
        let is_test = |m: &Module| (1..=m.len()).any(|k| test_only.contains(&m[..k]));
        if module.iter().any(|m| m == "tests" || m == "testing") || is_test(module) {
            continue;
        }
        for (line, path) in paths(code, &["crate", "super", "self"]) {
            let full = resolve(module, &path);
            let k = (0..=full.len())
                .rev()
                .find(|&k| modules.contains(&full[..k]))
                .unwrap_or(0);
            let target = &full[..k];
            let c = module
                .iter()
                .zip(target)
                .take_while(|(a, b)| a == b)
                .count();
            if c == module.len() || c == target.len() {
                continue; // one contains the other
            }
            let example = format!("{rel}:{line}: {}", path.join("::"));
            edges
                .entry((module[..=c].to_vec(), target[..=c].to_vec()))
                .or_insert(example);
        }
    }
    edges
}

/// The strongly connected components with more than one module.
fn cycles(edges: &BTreeMap<(Module, Module), String>) -> Vec<BTreeSet<Module>> {
    let mut graph: BTreeMap<&Module, Vec<&Module>> = BTreeMap::new();
    for (a, b) in edges.keys() {
        graph.entry(a).or_default().push(b);
    }
    let reach = |from: &Module| {
        let (mut seen, mut stack) = (BTreeSet::new(), vec![from]);
        while let Some(m) = stack.pop() {
            for &next in graph.get(m).into_iter().flatten() {
                if seen.insert(next.clone()) {
                    stack.push(next);
                }
            }
        }
        seen
    };
    let reachable: BTreeMap<&Module, BTreeSet<Module>> =
        graph.keys().map(|&m| (m, reach(m))).collect();
    let mut components: Vec<BTreeSet<Module>> = Vec::new();
    for (&m, from_m) in &reachable {
        let component: BTreeSet<Module> = from_m
            .iter()
            .filter(|n| reachable.get(n).is_some_and(|r| r.contains(m)))
            .cloned()
            .collect();
        if component.len() > 1 && !components.contains(&component) {
            components.push(component);
        }
    }
    components
}

#[test]
fn no_import_cycles_between_modules() {
    let mut report = Vec::new();
    for krate in CRATES {
        let edges = module_edges(&format!("{krate}/src"));
        for component in cycles(&edges) {
            let names: Vec<String> = component.iter().map(|m| m.join("::")).collect();
            report.push(format!("{krate}: {}", names.join(" <-> ")));
            for ((a, b), example) in &edges {
                if component.contains(a) && component.contains(b) {
                    let (a, b) = (a.join("::"), b.join("::"));
                    report.push(format!("  {a} -> {b}   ({example})"));
                }
            }
        }
    }
    check("import cycles between modules", &report);
}
