"""The package's shape: every import of every module (function-level ones too) points down the
layers, no two modules import each other even indirectly, and an import below a module's top says why.

The layers, lowest first (README, "Module map"): a module may import its own layer and those below.
"""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("core", "data", "models", "inference", "reporting", "training", "serving", "stages", "cli", "bench")


def module_name(path):
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules():
    """{module name: path} for pipeline/ and run.py."""
    found = {module_name(path): path for path in (ROOT / "pipeline").rglob("*.py")}
    found["run"] = ROOT / "run.py"
    return found


def layer(module):
    """The layer of a module: its subpackage under pipeline, "cli" for run.py, None for the root."""
    if module == "run":
        return "cli"
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def imports(path, known):
    """[(line, imported module, at top level)] of the pipeline modules `path` imports. `from a import b`
    counts as module a.b where that is a module, else as a."""
    tree = ast.parse(path.read_text(), str(path))
    this = module_name(path) if path.name != "run.py" else "run"
    package = this if path.name == "__init__.py" else this.rpartition(".")[0]
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        for name in names:
            if name.split(".")[0] == "pipeline":
                found.append((node.lineno, name, id(node) in top))
    return found


def graph():
    known = modules()
    return known, {name: imports(path, known) for name, path in known.items()}


def test_every_import_points_down_the_layers():
    known, edges = graph()
    against = []
    for module, found in edges.items():
        here = layer(module)
        if here is None:   # pipeline/__init__.py: applies core.runtime's settings on import
            continue
        for line, target, _ in found:
            there = layer(target)
            if there is not None and LAYERS.index(there) > LAYERS.index(here):
                against.append(f"{known[module].relative_to(ROOT)}:{line} ({here}) imports {target} ({there})")
    assert not against, "imports against the layer order:\n" + "\n".join(against)


def test_no_module_imports_itself_through_others():
    known, edges = graph()
    targets = {module: {t for _, t, _ in found if t in known and t != module} for module, found in edges.items()}
    cycles = []
    state = {}   # module -> "open" while on the path, "done" after

    def visit(module, path):
        state[module] = "open"
        for target in sorted(targets[module]):
            if state.get(target) == "open":
                cycles.append(" -> ".join(path[path.index(target):] + [target]))
            elif target not in state:
                visit(target, path + [target])
        state[module] = "done"

    for module in sorted(targets):
        if module not in state:
            visit(module, [module])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_an_import_inside_a_function_says_why():
    unexplained = []
    for module, path in modules().items():
        lines = path.read_text().splitlines()
        tree = ast.parse("\n".join(lines))
        top = {id(node) for node in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in top:
                here, above = lines[node.lineno - 1], lines[node.lineno - 2].strip()
                if "#" not in here and not above.startswith("#"):
                    unexplained.append(f"{path.relative_to(ROOT)}:{node.lineno}: {here.strip()}")
    assert not unexplained, "imports below the top without a comment saying why:\n" + "\n".join(unexplained)


@pytest.mark.parametrize("package", [p for p in LAYERS if p not in ("stages", "cli")] + ["cli"])
def test_each_subpackage_says_what_it_is_for_and_its_public_names(package):
    init = ROOT / "pipeline" / package / "__init__.py"
    docstring = ast.get_docstring(ast.parse(init.read_text()))
    assert docstring and "Public" in docstring, f"{init}: a docstring naming what it is for and its public names"
