"""environment.yml (conda) and pyproject.toml (pip) describe the same environment."""
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _pyproject_requirements() -> set[str]:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(meta["dependencies"])
    for extra in meta.get("optional-dependencies", {}).values():
        reqs += extra
    return {r.replace(" ", "") for r in reqs}


def _environment_requirements() -> tuple[str, set[str]]:
    """(python spec, pip requirement strings) from the simple environment.yml layout."""
    text = (ROOT / "environment.yml").read_text()
    python = re.search(r"^\s*-\s*python\s*=\s*([\d.]+)\s*$", text, re.M).group(1)
    pip_block = text.split("- pip:", 1)[1]
    reqs = {m.group(1).replace(" ", "") for m in re.finditer(r"^\s+-\s+([^#\s][^#\n]*?)\s*$", pip_block, re.M)}
    return python, reqs


def test_same_packages_and_pins():
    python, env_reqs = _environment_requirements()
    assert python == "3.11"
    assert env_reqs == _pyproject_requirements()


def test_torch_pins_match_the_local_wheels():
    reqs = _pyproject_requirements()
    assert "torch==2.14.1" in reqs and "torchvision==0.29.1" in reqs
