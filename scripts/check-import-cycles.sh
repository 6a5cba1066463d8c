#!/usr/bin/env bash
# Fails when the folders (top-level modules) of a crate's source import each other in a circle.
# A module's imports are the `crate::<module>` paths in its files (use lines and inline paths),
# unit tests excluded; an edge a -> b means a file under a uses crate::b. Prints every circle found
# (each strongly connected component of more than one module) and exits 1 if there is one.
# Comment lines and test-only files (`tests.rs`, `*_tests.rs`, a trailing `#[cfg(test)] mod tests`)
# are not read.
# Usage: scripts/check-import-cycles.sh [source dir...]   (default: src raft/src)
set -euo pipefail
cd "$(dirname "$0")/.."
dirs=("$@")
[ ${#dirs[@]} -eq 0 ] && dirs=(src raft/src)
status=0
for dir in "${dirs[@]}"; do
    python3 - "$dir" <<'PY' || status=1
import os, re, sys

root = sys.argv[1]
edges = {}
for base, _, files in os.walk(root):
    for name in files:
        if not name.endswith(".rs"):
            continue
        path = os.path.join(base, name)
        relative = os.path.relpath(path, root)
        module = relative.split(os.sep)[0]
        module = module[:-3] if module.endswith(".rs") else module
        if module in ("main", "lib"):
            continue
        text = open(path, encoding="utf-8").read()
        cut = text.find("#[cfg(test)]\nmod tests")
        if cut >= 0:
            text = text[:cut]
        if name == "tests.rs" or name.endswith("_tests.rs"):
            continue
        # Comments (and doc comments) name modules without importing them.
        text = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("//"))
        targets = set(re.findall(r"\bcrate::([a-z_][a-z0-9_]*)", text))
        # use crate::{a, b::c};
        for group in re.findall(r"\bcrate::\{([^}]*)\}", text):
            targets.update(re.findall(r"(?:^|,)\s*([a-z_][a-z0-9_]*)", group))
        edges.setdefault(module, set()).update(t for t in targets if t != module)

# Tarjan's strongly connected components.
index, low, on_stack, stack, components = {}, {}, set(), [], []
counter = [0]
def visit(node):
    index[node] = low[node] = counter[0]; counter[0] += 1
    stack.append(node); on_stack.add(node)
    for target in edges.get(node, ()):
        if target not in index:
            visit(target); low[node] = min(low[node], low[target])
        elif target in on_stack:
            low[node] = min(low[node], index[target])
    if low[node] == index[node]:
        component = []
        while True:
            top = stack.pop(); on_stack.discard(top); component.append(top)
            if top == node:
                break
        components.append(component)
sys.setrecursionlimit(10000)
for node in sorted(edges):
    if node not in index:
        visit(node)
circles = [sorted(c) for c in components if len(c) > 1]
if not circles:
    print(f"{root}: no import circle among {len(edges)} modules")
    sys.exit(0)
for circle in circles:
    print(f"{root}: import circle among {', '.join(circle)}:")
    for module in circle:
        for target in sorted(edges[module] & set(circle)):
            print(f"    {module} -> {target}")
sys.exit(1)
PY
done
exit $status
