"""Lower packages never import higher ones: common <- models <- mapping <- netlists <- group_scissor."""

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ORDER = ["common", "models", "mapping", "netlists", "group_scissor"]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):  # function-level (lazy) imports count too
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", ORDER)
def test_a_package_imports_nothing_above_it(package):
    above = set(ORDER[ORDER.index(package) + 1:])
    bad = {f"{p.relative_to(REPO)}: {sorted(_imports(p) & above)}"
           for p in (REPO / package).rglob("*.py") if _imports(p) & above}
    assert not bad, f"{package} imports a higher layer: {sorted(bad)}"
