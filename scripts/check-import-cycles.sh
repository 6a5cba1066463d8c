#!/usr/bin/env bash
# Report import circles among the files of one Rust source folder (a crate's `src/`).
#
#   scripts/check-import-cycles.sh raft/src
#
# Every `.rs` file is one node. A file depends on another when it names a module path that the
# other file holds: in `use` declarations (`crate::`, `super::`, `self::` and, in a module file,
# its own child modules, brace groups expanded) and in paths written inline in the code
# (`crate::state_machine::fill_header(..)`). A path is resolved to the deepest module that has a
# file of its own, so `crate::peer::PeerClient` points at `peer/mod.rs` and
# `crate::peer::client::PeerClient` at `peer/client.rs`. `mod` declarations are the module tree,
# not imports, and are not counted; `pub use` re-exports are. Inline `#[cfg(test)] mod … { … }`
# blocks are left out (tests may reach anywhere); test files of their own are checked like any
# other file.
#
# Prints every circle (strongly connected group of files) with the imports that close it and
# exits 1 if there is one, 0 otherwise; `--edges` also prints every dependency found.
set -euo pipefail

if [[ $# -lt 1 || ! -d "$1" ]]; then
    echo "usage: $0 <source folder, e.g. raft/src> [--edges]" >&2
    exit 2
fi
command -v python3 >/dev/null || {
    echo "$0: python3 is required (scripts/install-deps.sh installs it)" >&2
    exit 2
}

exec python3 - "$@" <<'PY'
import os
import re
import sys

root = os.path.normpath(sys.argv[1])
show_edges = "--edges" in sys.argv[2:]

# Module path (tuple of names) -> file, and file -> module path.
modules = {}
for dirpath, _dirs, files in os.walk(root):
    for name in files:
        if not name.endswith(".rs"):
            continue
        path = os.path.join(dirpath, name)
        rel = os.path.relpath(path, root)[:-3].split(os.sep)
        if rel[-1] in ("mod", "lib", "main") and (rel[-1] == "mod" or len(rel) == 1):
            rel = rel[:-1]
        modules[tuple(rel)] = path
files = {path: module for module, path in modules.items()}


def strip_comments_and_strings(text):
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", " ", text)
    text = re.sub(r'r#*"(?:.|\n)*?"#*', '""', text)
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', text)
    text = re.sub(r"'(?:\\.|[^'\\])'", "' '", text)
    return text


def drop_inline_test_modules(text):
    out = []
    i = 0
    pattern = re.compile(r"#\[cfg\(test\)\]\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+\w+\s*\{")
    while True:
        m = pattern.search(text, i)
        if not m:
            out.append(text[i:])
            return "".join(out)
        out.append(text[i : m.start()])
        depth = 1
        j = m.end()
        while j < len(text) and depth:
            if text[j] == "{":
                depth += 1
            elif text[j] == "}":
                depth -= 1
            j += 1
        i = j


def expand(tree):
    """`a::{b::{C, D}, e}` -> ["a::b::C", "a::b::D", "a::e"]."""
    tree = re.sub(r"\s+", "", tree)
    depth = 0
    for i, c in enumerate(tree):
        if c == "{":
            if depth == 0:
                prefix = tree[:i]
                body = tree[i + 1 : tree.rindex("}")]
                parts, depth2, start = [], 0, 0
                for j, d in enumerate(body):
                    if d == "{":
                        depth2 += 1
                    elif d == "}":
                        depth2 -= 1
                    elif d == "," and depth2 == 0:
                        parts.append(body[start:j])
                        start = j + 1
                parts.append(body[start:])
                result = []
                for part in parts:
                    if part:
                        result.extend(expand(prefix + part))
                return result
            depth += 1
    return [re.sub(r"\bas\b.*$", "", tree)]


def resolve(module, segments):
    """Absolute module path named by `segments` as written in `module`, or None if external."""
    head = segments[0]
    if head == "crate":
        path = list(segments[1:])
    elif head in ("self", "super"):
        base = list(module)
        rest = list(segments)
        while rest and rest[0] in ("self", "super"):
            if rest.pop(0) == "super":
                if not base:
                    return None
                base.pop()
        path = base + rest
    elif tuple(module) + (head,) in modules:
        path = list(module) + list(segments)
    else:
        return None
    while path and tuple(path) not in modules:
        path.pop()
    return tuple(path)


edges = {path: {} for path in files}
for path, module in files.items():
    with open(path, encoding="utf-8") as f:
        text = drop_inline_test_modules(strip_comments_and_strings(f.read()))
    named = []
    for m in re.finditer(r"(?:^|[;{}\s])(?:pub(?:\([^)]*\))?\s+)?use\s+([^;]+);", text):
        for item in expand(m.group(1)):
            named.append((item, "use " + item))
    for m in re.finditer(r"(?<![\w:])((?:crate|super|self)(?:::\w+)+)", text):
        named.append((m.group(1), m.group(1)))
    for item, how in named:
        segments = [s for s in item.split("::") if s]
        if not segments or segments[-1] == "*" and len(segments) == 1:
            continue
        segments = [s for s in segments if s != "*"]
        target = resolve(module, segments)
        if target is None:
            continue
        target_file = modules[target]
        if target_file != path:
            edges[path].setdefault(target_file, how)

if show_edges:
    for path in sorted(edges):
        for target, how in sorted(edges[path].items()):
            print(f"{path} -> {target}    ({how})")

# Tarjan's strongly connected components.
index, low, on_stack, stack, groups = {}, {}, set(), [], []
counter = [0]


def visit(v):
    index[v] = low[v] = counter[0]
    counter[0] += 1
    stack.append(v)
    on_stack.add(v)
    for w in edges[v]:
        if w not in index:
            visit(w)
            low[v] = min(low[v], low[w])
        elif w in on_stack:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        group = []
        while True:
            w = stack.pop()
            on_stack.discard(w)
            group.append(w)
            if w == v:
                break
        if len(group) > 1:
            groups.append(sorted(group))


sys.setrecursionlimit(10000)
for v in sorted(edges):
    if v not in index:
        visit(v)

if not groups:
    print(f"no import circle among the {len(files)} files of {root}")
    sys.exit(0)
for group in groups:
    print(f"import circle among {len(group)} files of {root}:")
    for path in group:
        for target, how in sorted(edges[path].items()):
            if target in group:
                print(f"  {path} -> {target}    ({how})")
sys.exit(1)
PY
