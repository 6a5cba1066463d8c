//! The OpenAPI document against the routes the server registers and the recorded operation list.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::api::openapi;

/// The HTTP methods the routers use, as the `axum::routing` functions are named.
const METHODS: [&str; 6] = ["get", "post", "put", "patch", "delete", "any"];

/// The part of a source file before its unit tests (test-only files, `tests.rs` and `*_tests.rs`,
/// are not read at all), so that routes a test builds for itself
/// are not taken for the product's.
fn product_code(text: &str) -> &str {
    text.find("#[cfg(test)]\nmod tests {").map_or(text, |end| &text[..end])
}

fn source_files(dir: &Path, files: &mut Vec<(String, String)>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|error| panic!("read {}: {error}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            source_files(&path, files);
        } else if path.extension().is_some_and(|ext| ext == "rs")
            && !path
                .file_name()
                .is_some_and(|name| name.to_string_lossy().ends_with("tests.rs"))
        {
            let text =
                std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("read {}: {error}", path.display()));
            files.push((path.display().to_string(), product_code(&text).to_string()));
        }
    }
}

/// The text of the call whose arguments start at `open` (just after its `(`), up to the
/// matching `)`.
fn call_arguments(text: &str, open: usize) -> &str {
    let mut depth = 1usize;
    for (offset, character) in text[open..].char_indices() {
        match character {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return &text[open..open + offset];
                }
            }
            _ => {}
        }
    }
    panic!("unbalanced .route( call");
}

/// Every `(method, path)` registered with `.route(…)` anywhere in the server's source, with
/// path constants (`const X_PATH: &str = "…"`) resolved, and the file each came from.
fn registered_routes() -> BTreeMap<(String, String), String> {
    let mut files = Vec::new();
    source_files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut files);
    let mut constants = BTreeMap::new();
    for (_, text) in &files {
        for line in text.lines() {
            let Some((name, value)) = line.trim().split_once(": &str = \"") else {
                continue;
            };
            let name = name.rsplit(' ').next().expect("a constant has a name");
            let value = value.trim_end_matches("\";");
            constants.insert(name.to_string(), value.to_string());
        }
    }
    let mut routes = BTreeMap::new();
    for (file, text) in &files {
        for (start, _) in text.match_indices(".route(") {
            let arguments = call_arguments(text, start + ".route(".len());
            let (path, handlers) = arguments.split_once(',').expect("a route has a path and handlers");
            let path = path.trim();
            let path = match path.strip_prefix('"') {
                Some(literal) => literal.trim_end_matches('"').to_string(),
                None => constants
                    .get(path)
                    .unwrap_or_else(|| panic!("{file}: route path constant {path} not found"))
                    .clone(),
            };
            for method in METHODS {
                let call = format!("{method}(");
                for (at, _) in handlers.match_indices(&call) {
                    let before = handlers[..at].chars().next_back();
                    if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                        continue;
                    }
                    routes.insert((method.to_string(), path.clone()), file.clone());
                }
            }
        }
    }
    routes
}

fn documented_operations() -> BTreeSet<(String, String)> {
    let document = openapi();
    let mut operations = BTreeSet::new();
    for (path, item) in &document.paths.paths {
        for (method, operation) in [
            ("get", &item.get),
            ("post", &item.post),
            ("put", &item.put),
            ("patch", &item.patch),
            ("delete", &item.delete),
        ] {
            if operation.is_some() {
                operations.insert((method.to_string(), path.clone()));
            }
        }
    }
    operations
}

#[test]
fn every_kuboard_api_route_is_documented_and_every_documented_route_exists() {
    let registered = registered_routes();
    // The scan must see every module that serves part of the API, or the comparison below
    // would pass for a scan that found nothing.
    for (method, path) in [
        ("post", "/kuboard-api/auth/login"),
        ("post", "/kuboard-api/cluster-imports"),
        ("get", "/kuboard-api/audit/status"),
        ("put", "/kuboard-api/system/members/{id}"),
        ("get", "/kuboard-api/system/snapshot"),
        ("any", "/k8s-api/{cluster}/{*path}"),
    ] {
        assert!(
            registered.contains_key(&(method.to_string(), path.to_string())),
            "the route scan finds {method} {path}: {registered:?}"
        );
    }
    let api: BTreeSet<(String, String)> = registered
        .keys()
        .filter(|(_, path)| path.starts_with("/kuboard-api/"))
        .cloned()
        .collect();
    let documented: BTreeSet<(String, String)> = documented_operations()
        .into_iter()
        .filter(|(_, path)| path.starts_with("/kuboard-api/"))
        .collect();
    let undocumented: Vec<String> = api
        .difference(&documented)
        .map(|route| format!("{} {} ({})", route.0, route.1, registered[route]))
        .collect();
    assert!(
        undocumented.is_empty(),
        "routes missing from the OpenAPI document: {undocumented:?}"
    );
    let unserved: Vec<_> = documented.difference(&api).collect();
    assert!(
        unserved.is_empty(),
        "documented operations no router serves: {unserved:?}"
    );
}

/// The document lists exactly the operations of `tests/fixtures/openapi-operations.txt`, the
/// list captured from the document before the HTTP code was reorganised: moving handlers
/// between modules must neither drop nor add an operation.
#[test]
fn the_document_lists_the_recorded_operations() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/openapi-operations.txt");
    let text = std::fs::read_to_string(&fixture).unwrap_or_else(|error| panic!("read {}: {error}", fixture.display()));
    let expected: Vec<String> = text
        .lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(str::to_string)
        .collect();
    assert!(expected.len() > 30, "the fixture lists the operations: {expected:?}");
    let mut actual: Vec<String> = documented_operations()
        .into_iter()
        .map(|(method, path)| format!("{} {path}", method.to_uppercase()))
        .collect();
    actual.sort();
    assert_eq!(
        actual,
        expected,
        "the OpenAPI operations differ from {}",
        fixture.display()
    );
}

#[test]
fn the_kubernetes_proxy_is_not_part_of_the_document() {
    assert!(documented_operations()
        .iter()
        .all(|(_, path)| !path.starts_with("/k8s-api")));
}
