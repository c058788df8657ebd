"""The README's Python example runs verbatim, and its quoted training curves are the published JSON."""

import json
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


def test_readme_curve_rows_are_the_published_json():
    """Every training curve in benchmarks/published/ appears in the README cell for cell (and the r1_read_order
    counts in its benchmarks-table row, and each stacked_digits report's row in the table of readers), and every
    published file is listed in that folder's README with the command and environment that made it."""
    from tests.test_evaluate import _benchmark

    root, bench, digits = README.parent, _benchmark("mode_collapse"), _benchmark("stacked_digits")
    readme, listing = README.read_text(), (root / "benchmarks" / "published" / "README.md").read_text()
    published = sorted((root / "benchmarks" / "published").glob("*.json"))
    assert published, "benchmarks/published/ holds no JSON"
    for path in published:
        report = json.loads(path.read_text())
        assert f"`{path.name}`" in listing and report["command"].strip() in listing, path.name
        assert re.fullmatch(r"[0-9a-f]{40}", report["environment"]["source"]["commit"]), path.name
        if path.name == "r1_read_order.json":  # the benchmarks table's row quotes both counts and the error
            waited, unordered = report["rows"]
            error = f"{unordered['max_relative_error']:.1e}".replace("e-0", "e-")
            quoted = (f"{waited['traces_off']} of {waited['traces']} with the wait, {unordered['traces_off']} of "
                      f"{unordered['traces']} without ({error} of R1 off)")
            assert re.search(rf"^\| `r1_read_order.py` \|.*{re.escape(quoted)}", readme, flags=re.M), quoted
        if path.name.startswith("stacked_digits"):  # its row in the table of readers, as the script prints it
            assert re.search(rf"^{re.escape(digits.summary_row(report))}$", readme, flags=re.M), path.name
        for name, result in report.get("results", {}).items():  # mode_collapse.py reports
            key = bench.curve_key(result["dataset"])
            for run in result["runs"]:
                row = re.search(rf"^\| {re.escape(name)}, seed {run['seed']} \|(.*)\|$", readme, flags=re.M)
                assert row, f"{path.name}: no README row for {name}, seed {run['seed']}"
                cells = [cell.strip() for cell in row.group(1).split("|")]
                assert cells == [bench._curve_cell(point, key) for point in run["curve"]], path.name
