"""The kit installs the way the README says, and its layers stay apart."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import fskit

ROOT = Path(__file__).resolve().parents[1]

# conda-forge spells a few PyPI names differently.
CONDA_NAMES = {"msgpack": "msgpack-python", "redis": "redis-py", "xgboost-cpu": "py-xgboost-cpu"}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].strip().lower()


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _conda_packages() -> dict[str, str]:
    packages = {}
    text = (ROOT / "environment.yml").read_text()
    for line in text.split("\ndependencies:\n", 1)[1].splitlines():
        m = re.match(r"^\s+- ([A-Za-z0-9_.-]+)(.*)$", line)
        if m and m.group(1) not in ("pip", "python", "-e"):
            packages[m.group(1).lower()] = m.group(2).strip()
    return packages


def test_environment_yml_names_the_same_packages_as_pyproject():
    project = _pyproject()["project"]
    wanted = {}
    for req in project["dependencies"] + project["optional-dependencies"]["notebook"]:
        name = _name(req)
        wanted[CONDA_NAMES.get(name, name)] = req[len(name) :].strip()
    conda = _conda_packages()
    assert set(conda) == set(wanted), (
        f"only in environment.yml: {sorted(set(conda) - set(wanted))}; "
        f"only in pyproject.toml: {sorted(set(wanted) - set(conda))}"
    )
    for name, bound in wanted.items():
        assert conda[name] == bound, f"{name}: pyproject says {bound!r}, conda {conda[name]!r}"


def test_import_fskit_imports_no_jupyter_module():
    code = (
        "import sys, fskit, fskit.datasets, fskit.cli; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'ipywidgets', 'IPython', 'jupyter_client', 'ipykernel', 'traitlets', 'notebook'}); "
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"import fskit pulled in {out.stdout.strip()}"


def test_widgets_package_is_installed_as_fskit_widgets():
    import fskit.widgets

    assert Path(fskit.widgets.__file__).resolve().parent == ROOT / "widgets"


def test_public_names_are_exported():
    for name in fskit.__all__:
        assert hasattr(fskit, name), name
    assert (ROOT / "fskit" / "py.typed").exists()


def test_cli_demo_runs_end_to_end(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "fskit.cli", "demo", "--repo", str(tmp_path / "repo")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "feature_view user_stats@v1" in out.stdout
    rows = int(re.search(r"shape: ([\d,]+) rows", out.stdout).group(1).replace(",", ""))
    transactions = fskit.datasets.fraud_entity_rows(ROOT / "sample_data")
    assert rows == transactions.height
    assert (tmp_path / "repo" / "registry.json").exists()


def test_cli_reports_errors_without_a_traceback(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "fskit.cli", "demo", "--data", str(tmp_path / "nowhere")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert out.returncode == 2
    assert "fskit sample-data" in out.stderr
    assert "Traceback" not in out.stderr
