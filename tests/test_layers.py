"""The layout: sweeps/ as layers that import only downwards, the analysis without Ray or torch, modules by job.

Beside the import-cycle check (../shared/tools/import_cycles.py): every import of a sweeps module,
at the top of a file or inside a function, goes to its own layer or one below; the analysis
layers never import Ray or torch; `gptsweep analyze` of a finished sweep loads neither; no module
of gptcore/ or sweeps/ is over 400 lines; grid or search is asked only inside the strategies.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest
from results_factory import curve, make_run

ROOT = Path(__file__).resolve().parents[1]
SWEEPS = ROOT / "sweeps"
# lowest first: a layer may import its own modules and those of the layers before it
LAYERS = ("experiment", "results", "verdicts", "report", "storage", "trackers", "view", "strategies", "tune",
          "command")
ANALYSIS = ("experiment", "results", "verdicts", "report")
TOP = {"__init__", "__main__", "run", "analyze"}  # the package's face and the commands' entry points


def layer_of(module: str) -> int:
    """The layer index of a sweeps module (`sweeps.verdicts.stats`); the top-level modules are the commands'."""
    parts = module.split(".")
    if len(parts) >= 2 and parts[1] in LAYERS:
        return LAYERS.index(parts[1])
    return len(LAYERS) - 1


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in a file, relative ones made absolute."""
    rel = path.relative_to(ROOT).with_suffix("")
    package = list(rel.parts[:-1]) if rel.name != "__init__" else list(rel.parts[:-1])
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            out.append((node.lineno, module))
            # `from sweeps.x import y` may name a module y
            out += [(node.lineno, f"{module}.{a.name}") for a in node.names if (SWEEPS.parent / Path(
                *f"{module}.{a.name}".split("."))).with_suffix(".py").is_file()]
    return out


def sweeps_modules() -> list[Path]:
    return sorted(SWEEPS.rglob("*.py"))


def test_no_layer_imports_one_above_it():
    wrong = []
    for path in sweeps_modules():
        me = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        for line, module in imports(path):
            if module.startswith("sweeps.") and layer_of(module) > layer_of(me):
                wrong.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert not wrong, "\n".join(wrong)


def test_the_analysis_layers_never_import_ray_or_torch():
    wrong = []
    for path in sweeps_modules():
        rel = path.relative_to(SWEEPS)
        if rel.parts[0] not in ANALYSIS:
            continue
        for line, module in imports(path):
            if module.split(".")[0] in ("ray", "torch"):
                wrong.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert not wrong, "\n".join(wrong)


def test_every_layer_says_what_it_owns_and_may_import():
    for name in LAYERS:
        doc = ast.get_docstring(ast.parse((SWEEPS / name / "__init__.py").read_text())) or ""
        assert "May import" in doc and len(doc.split()) > 30, f"sweeps/{name}/__init__.py: {doc[:80]!r}"


def test_modules_by_job_not_too_many_and_none_too_long():
    top = {p.stem for p in SWEEPS.glob("*.py")}
    assert top <= TOP and len(top) <= 6, top
    for package in [p for p in SWEEPS.iterdir() if p.is_dir() and (p / "__init__.py").is_file()]:
        assert len(list(package.glob("*.py"))) <= 12, package
    long = [f"{p.relative_to(ROOT)} ({n})" for p in list(SWEEPS.rglob("*.py")) + list((ROOT / "gptcore").rglob("*.py"))
            if (n := len(p.read_text().splitlines())) > 400]
    assert not long, long


def test_grid_or_search_is_asked_only_inside_the_strategies():
    question = re.compile(r'search\s*[!=]=\s*"(grid|optuna)"|\bis_search\b|stage["\')\]]*\s*[!=]=\s*"(confirm|search)"')
    found = [f"{p.relative_to(ROOT)}:{i}" for p in sweeps_modules() if p.relative_to(SWEEPS).parts[0] != "strategies"
             for i, line in enumerate(p.read_text().splitlines(), 1) if question.search(line)]
    assert not found, found


@pytest.mark.parametrize("exp", ["exp4", "search"])
def test_gptsweep_analyze_loads_neither_torch_nor_ray(tmp_path, exp):
    folder = tmp_path / exp
    if exp == "exp4":  # its report redraws the learning-rate schedules
        for name, over in (("none", {"decay_lr": False, "warmup_iters": 0}), ("warmup_only", {"warmup_iters": 100}),
                           ("decay_only", {"warmup_iters": 0}), ("warmup_decay", {"warmup_iters": 100})):
            make_run(folder, name, curve(1.5, iters=range(0, 2001, 500)), overrides=over)
    else:
        for i, lr in enumerate((1e-4, 3e-4, 1e-3, 3e-3, 6e-3, 1e-2)):
            make_run(folder, f"t{i:03d}", curve(1.5 + abs(i - 3) * 0.05), seeds=(1337,), stage="search",
                     overrides={"learning_rate": lr})
    code = ("import sys; from sweeps.__main__ import main; code = main(['analyze', sys.argv[1], '--exp', sys.argv[2]]);"
            "loaded = sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'ray'});"
            "print('LOADED', loaded); sys.exit(code)")
    r = subprocess.run([sys.executable, "-c", code, str(folder), "exp4" if exp == "exp4" else "exp1"],
                       capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "LOADED []" in r.stdout, r.stdout[-500:]
    assert (folder / "report.md").is_file()
