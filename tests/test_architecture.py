"""The layering rules of ARCHITECTURE.md, checked by walking the imports of every module."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("data_registry", "ml", "serving")
# Modules in ml that must stay free of torch (the service imports them).
TORCH_FREE_ML = ("ml/__init__.py", "ml/features", "ml/advice.py", "ml/windows.py",
                 "ml/inference.py", "ml/scaling.py", "ml/synthetic.py", "ml/sources")
MAX_LINES = 600


def _modules():
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            yield path


def _top_level_imports(path: Path) -> set[str]:
    """Names imported at module level (function-local, lazy imports are allowed)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, (ast.If, ast.Try)):
            for sub in ast.walk(node):
                if isinstance(sub, ast.Import):
                    names |= {a.name for a in sub.names}
                elif isinstance(sub, ast.ImportFrom) and sub.module and sub.level == 0:
                    names.add(sub.module)
    return names


def test_no_forbidden_import_edges():
    bad = []
    for path in _modules():
        rel = path.relative_to(ROOT).as_posix()
        roots = {n.split(".")[0] for n in _top_level_imports(path)}
        if rel.startswith("data_registry/"):
            forbidden = {"ml", "serving", "torch", "mlflow", "experiments"}
        elif rel.startswith("ml/"):
            forbidden = {"serving", "experiments"}
            if any(rel == p or rel.startswith(p + "/") for p in TORCH_FREE_ML):
                forbidden |= {"torch", "mlflow"}
        else:  # serving
            forbidden = {"torch", "mlflow", "experiments"}
        hit = roots & forbidden
        if hit:
            bad.append(f"{rel} imports {sorted(hit)} at module level")
    assert not bad, "\n".join(bad)


def test_modules_stay_small():
    big = [f"{p.relative_to(ROOT)}: {n} lines" for p in _modules()
           if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES]
    assert not big, "split these modules:\n" + "\n".join(big)


def test_no_grab_bag_module_names():
    bad = [p for p in _modules() if p.stem in {"utils", "helpers", "common", "misc"}]
    assert not bad, bad


@pytest.mark.parametrize("module", ["ml", "ml.features", "serving.cli"])
def test_light_imports_do_not_load_torch(module):
    code = f"import sys, {module}; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
