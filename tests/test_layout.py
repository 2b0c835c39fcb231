"""The package's shape: no import cycles between modules, and the product never imports the sandbox."""

import ast
from pathlib import Path

import octopanel

ROOT = Path(octopanel.__file__).parent


def module_name(path):
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path, top_level_only):
    """The octopanel modules `path` imports (at module level only, or anywhere)."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("octopanel"):
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}  # `from octopanel import values`
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("octopanel")}
    return found


MODULES = {module_name(p): p for p in ROOT.rglob("*.py")}


def with_packages(name, targets):
    """Importing a.b.c first runs a/__init__.py and a/b/__init__.py: those are edges too, except to the
    packages holding `name` itself, which Python has begun to import before it."""
    own = {name.rsplit(".", k)[0] for k in range(1, name.count(".") + 1)}
    found = set(targets)
    for target in targets:
        found |= {target.rsplit(".", k)[0] for k in range(1, target.count(".") + 1)}
    return found - own


def graph(top_level_only):
    return {
        name: with_packages(name, imports(path, top_level_only)) & set(MODULES) - {name}
        for name, path in MODULES.items()
    }


def test_no_two_modules_import_each_other_at_load_time():
    """A cycle (actions/gcode → motion → temps → gcode, once) makes the import order matter; none is left.
    One through a package's __init__ counts: `import octopanel.gcode.policy` alone failed, policy importing
    actions.registry, whose package imports actions.motion, which imports policy."""
    edges, cycles = graph(top_level_only=True), []

    def visit(node, stack):
        if node in stack:
            cycles.append(stack[stack.index(node) :] + [node])
            return
        for nxt in sorted(edges[node]):
            if nxt not in done:
                visit(nxt, stack + [node])
        done.add(node)

    done = set()
    for name in sorted(edges):
        visit(name, [])
    assert not cycles, cycles
    assert len(edges) > 50  # the walk saw the package


def test_the_product_never_imports_the_sandbox():
    """sandbox/ (a local OctoPrint) serves the demo (its tours, and the keypad's --virtual), the tests and bench/."""
    edges = graph(top_level_only=False)
    users = sorted(
        name
        for name, targets in edges.items()
        if not name.startswith("octopanel.sandbox") and any(t.startswith("octopanel.sandbox") for t in targets)
    )
    assert users == [
        "octopanel.cli.demo",
        "octopanel.cli.demo_klipper",
        "octopanel.cli.demo_printer",
        "octopanel.cli.keypad",
    ]


def unannotated(tree, where):
    """`where:line name` for each public function or method (and `__init__`) missing a parameter or return type."""
    missing = []

    def visit(body, in_class):
        for node in body:
            if isinstance(node, ast.ClassDef):
                visit(node.body, in_class=True)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if node.name.startswith("_") and node.name != "__init__":
                    continue
                a = node.args
                params = a.posonlyargs + a.args
                static = any(isinstance(d, ast.Name) and d.id == "staticmethod" for d in node.decorator_list)
                if in_class and not static:
                    params = params[1:]  # self or cls
                params += a.kwonlyargs + [p for p in (a.vararg, a.kwarg) if p is not None]
                bare = [p.arg for p in params if p.annotation is None]
                if bare or node.returns is None:
                    lacks = ", ".join(bare + (["return"] if node.returns is None else []))
                    missing.append(f"{where}:{node.lineno} {node.name} (no type for {lacks})")

    visit(tree.body, in_class=False)
    return missing


def test_every_public_function_is_fully_annotated():
    """mypy runs with disallow_incomplete_defs; this also catches a public function with no annotation at all."""
    missing = []
    for path in sorted(ROOT.rglob("*.py")):
        missing += unannotated(ast.parse(path.read_text()), path.relative_to(ROOT.parent))
    assert not missing, "\n".join(missing)


def test_the_annotation_check_sees_what_it_should():
    """The walk above reaches methods and keyword-only parameters, and skips self and private helpers."""
    tree = ast.parse(
        "def ok(a: int, *, b: str = '') -> None: ...\n"
        "def _private(a): ...\n"
        "def bare(a, b: int): ...\n"
        "class C:\n"
        "    def __init__(self, x): ...\n"
        "    @staticmethod\n"
        "    def s(y) -> int: ...\n"
        "    def m(self, *args: int, **kw) -> None: ...\n"
    )
    assert unannotated(tree, "t.py") == [
        "t.py:3 bare (no type for a, return)",
        "t.py:5 __init__ (no type for x, return)",
        "t.py:7 s (no type for y)",
        "t.py:8 m (no type for kw)",
    ]


def test_every_module_imports_on_its_own():
    """The static walk above, checked for real: each module imported first, in a fresh set of modules."""
    import subprocess
    import sys

    script = (
        "import importlib, sys\n"
        "failed = []\n"
        "for name in sys.argv[1:]:\n"
        "    for loaded in [m for m in sys.modules if m == 'octopanel' or m.startswith('octopanel.')]:\n"
        "        del sys.modules[loaded]\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except Exception as exc:\n"
        "        failed.append(f'{name}: {type(exc).__name__}: {exc}')\n"
        "print('\\n'.join(failed))\n"
    )
    names = sorted(n for n in MODULES if not n.endswith(".__main__"))  # running it is not importing it
    out = subprocess.run([sys.executable, "-c", script, *names], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "", out.stdout + out.stderr
    assert len(names) > 50
