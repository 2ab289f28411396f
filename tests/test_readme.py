"""The README's Python example runs as printed (docs that rot are worse than none)."""
import re
import shutil
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


@pytest.mark.slow
@pytest.mark.needs_cc
def test_readme_python_example_runs(capsys):
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.skip("no C compiler (cc/gcc) for the C emitter the example uses")
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert blocks, "README has no python example"
    exec(compile(blocks[0], "README.md", "exec"), {})
    out = capsys.readouterr().out.splitlines()
    assert float(re.search(r"tensor\(([-\d.e+]+)", out[0]).group(1)) < 1e-3
    assert "'ms'" in out[1]
