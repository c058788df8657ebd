"""The README's Python example runs verbatim."""

import pathlib
import re

import numpy as np

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_example_runs_verbatim(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "the README has no Python example"
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)
    samples, restored = namespace["samples"], namespace["restored"]
    assert samples.shape == (16, 28, 28, 1) and np.abs(samples).max() <= 1
    np.testing.assert_array_equal(restored.generate(16, seed=0), samples)
