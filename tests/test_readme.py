"""The README is a front page whose Python example runs verbatim; docs/ holds the rest, and every result it quotes
is the published JSON; benchmarks/ holds the product benchmarks, experiments/ the studies."""

import ast
import json
import pathlib
import re

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
STUDY = ROOT / "docs" / "experiments" / "stacked_mnist.md"  # the stacked-MNIST study and its tables
PUBLISHED = (ROOT / "benchmarks" / "published", ROOT / "experiments" / "published")
# The Markdown this test holds to its rules (docs/ pages other briefs write are link targets, not checked here).
OWN_PAGES = ("README.md", "docs/README.md", "docs/numerics.md", "docs/export.md", "docs/evaluation.md",
             "docs/scaling.md", "docs/own_data.md", "docs/experiments/README.md", "docs/experiments/stacked_mnist.md",
             "benchmarks/README.md", "benchmarks/published/README.md", "experiments/README.md",
             "experiments/published/README.md")
# What benchmarks/ keeps: the product benchmarks. Studies live in experiments/.
BENCHMARKS = {"train_throughput", "sampling", "serving", "likelihood", "input_pipeline", "mode_collapse", "r1_cost",
              "small_data", "mixture_robustness"}
STUDIES = {"stacked_digits", "stacked_mnist_sweep", "r1_read_order"}


def _table(text, header):
    """The rows (lists of stripped cells) of the Markdown table whose header row starts with ``header``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip())[1:-1]])
    return rows


def _links(text):
    """Relative link targets of a Markdown text (``[text](target)``), web addresses left out."""
    return [t for t in re.findall(r"\]\(([^)\s]+)\)", text) if not re.match(r"[a-z]+:", t)]


def _slug(heading):
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_readme_python_example_runs_verbatim(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "the README has no Python example"
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)
    samples, restored = namespace["samples"], namespace["restored"]
    assert samples.shape == (16, 28, 28, 1) and np.abs(samples).max() <= 1
    np.testing.assert_array_equal(restored.generate(16, seed=0), samples)


def test_readme_own_data_example_runs_verbatim(tmp_path, monkeypatch):
    """The second Python block: a preset on your own arrays, whose run folder names them and whose schedule spans
    its epochs of them (docs/own_data.md)."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) >= 2, "the README has no example of a preset on your own data"
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(blocks[1], "README.md", "exec"), namespace)
    run, samples = namespace["run"], namespace["samples"]
    config = json.loads((tmp_path / "runs" / "my-points" / "config.json").read_text())
    assert samples.shape == (100, 2) and config["dataset"] == "arrays (4000, 2)" and run.epochs_done == 2
    decay = run.model.g_optimizer.get_config()["learning_rate"]["config"]["decay_steps"]
    assert decay == 100 * (4000 // 200)  # the preset's 100 epochs, of this data


def test_readme_is_a_front_page():
    """At most 150 lines, prose wrapped at 120 characters, the two commands, and a model table with one row per
    preset (what it trains, data, time, headline result) whose every result links to where it comes from."""
    from keras_gen import presets

    text = README.read_text()
    lines = text.splitlines()
    assert len(lines) <= 150, f"README.md has {len(lines)} lines"
    fenced = False
    for number, line in enumerate(lines, 1):
        fenced ^= line.startswith("```")
        assert fenced or line.startswith("|") or len(line) <= 120, f"README.md:{number} has {len(line)} characters"
    assert re.search(r"^make demo\s+#", text, flags=re.M) and re.search(r"^make test\s+#", text, flags=re.M)
    rows = _table(text, "| preset |")
    names = [re.fullmatch(r"`([a-z0-9-]+)`", row[0]).group(1) for row in rows]
    assert sorted(names) == sorted(presets.PRESETS), "the model table lists each preset once"
    for row in rows:
        assert len(row) == 5 and all(row[1:4]), row
        result = row[4]
        assert result == "—" or _links(result), f"{row[0]}: a headline result needs a link to its source"
    demo = re.search(r"^make demo\s+#.*trains the `([a-z0-9-]+)` preset", text, flags=re.M).group(1)
    makefile = (ROOT / "Makefile").read_text()
    assert f"keras-gen train {demo} " in makefile and demo in names, "the README names the preset make demo trains"


def test_docs_links_resolve():
    """Every relative link of the README, docs/ and the benchmark and experiment READMEs names a file or folder of
    the repository, and every #anchor a heading of its page."""
    for page in OWN_PAGES:
        path = ROOT / page
        assert path.is_file(), page
        for target in _links(path.read_text()):
            file, _, anchor = target.partition("#")
            resolved = (path.parent / file).resolve() if file else path
            assert resolved.exists(), f"{page}: link to {target}, which does not exist"
            if anchor:
                headings = re.findall(r"^#+ (.*)$", resolved.read_text(), flags=re.M)
                assert anchor in [_slug(h) for h in headings], f"{page}: no heading for #{anchor} in {file or page}"


def test_code_cites_only_what_the_repository_holds():
    """No code, doc or notebook cites the team's STACK.md notes; a docs/ page cited by the code exists."""
    notes = "STACK" + ".md"
    cited = set()
    for folder in ("keras_gen", "export", "serving", "benchmarks", "experiments", "notebooks", "docs"):
        for path in (ROOT / folder).rglob("*"):
            if path.suffix in (".py", ".md", ".ipynb") and "results" not in path.parts:
                text = path.read_text()
                assert notes not in text, f"{path.relative_to(ROOT)} cites {notes}"
                cited.update(re.findall(r"docs/[\w/]+\.md", text))
    assert notes not in README.read_text()
    assert {"docs/export.md"} <= cited
    for page in cited:
        assert (ROOT / page).is_file(), f"the code cites {page}, which does not exist"


def test_preset_descriptions_and_docstrings_say_what_a_thing_does_not_its_results():
    """Results (KLs, spreads over seeds, speed-ups, commit hashes) live in docs/ and published JSON, not in preset
    descriptions (``keras-gen presets``) or the GAN docstrings that used to quote them."""
    from keras_gen import presets
    from keras_gen.models import GAN

    result = re.compile(r"\bKL\b|\+-|±|\d\.\d+x\b|\d+\.\d+ ?%|\bnats\b|\bseeds? \d|\b[0-9a-f]{7,40}\b")
    for name, description in presets.list_presets():
        assert not result.search(description), f"preset {name}: {result.search(description).group()!r}"
    for name, doc in (("GAN", GAN.__doc__), ("GAN.fit", GAN.fit.__doc__),
                      ("GAN.recompute_generator_statistics", GAN.recompute_generator_statistics.__doc__)):
        assert not result.search(doc), f"{name}: {result.search(doc).group()!r}"


def test_benchmarks_keep_the_product_benchmarks_and_use_only_public_names():
    """benchmarks/ holds the product benchmarks and experiments/ the studies, each folder's README lists its
    scripts, the Makefile runs scripts that exist, and no benchmark reaches for a private keras-gen name."""
    assert {p.stem for p in (ROOT / "benchmarks").glob("*.py")} == BENCHMARKS
    assert {p.stem for p in (ROOT / "experiments").glob("*.py")} == STUDIES
    for folder, scripts in (("benchmarks", BENCHMARKS), ("experiments", STUDIES)):
        listed = {re.fullmatch(r"`(\w+)\.py`", row[0]).group(1)
                  for row in _table((ROOT / folder / "README.md").read_text(), "| script |")}
        assert listed == scripts, folder
    for script in re.findall(r"\b((?:benchmarks|experiments)/\w+\.py)", (ROOT / "Makefile").read_text()):
        assert (ROOT / script).is_file(), f"the Makefile runs {script}, which does not exist"
    for path in sorted((ROOT / "benchmarks").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("keras_gen"):
                names = node.module.split(".") + [alias.name for alias in node.names]
                assert not any(n.startswith("_") for n in names), f"{path.name}:{node.lineno} imports {names}"
            if isinstance(node, ast.Attribute) and re.match(r"_(?!_)", node.attr):
                assert ast.unparse(node.value) in ("self", "cls"), f"{path.name}:{node.lineno} uses " \
                    f"{ast.unparse(node)}"


def test_scripts_named_in_code_and_docs_exist():
    """A ``benchmarks/X.py`` or ``experiments/X.py`` named in the code, its usage lines or the docs is where it
    says (the published folders' listings quote the commands as they were run, and are left out)."""
    sources = [ROOT / page for page in OWN_PAGES if "published" not in page]
    for folder in ("keras_gen", "benchmarks", "experiments"):
        sources += sorted((ROOT / folder).rglob("*.py"))
    for path in sources:
        for script in re.findall(r"\b((?:benchmarks|experiments)/\w+\.py)\b", path.read_text()):
            assert (ROOT / script).is_file(), f"{path.relative_to(ROOT)} names {script}, which does not exist"


def test_docs_quote_the_published_json():
    """Every training curve in the published JSON appears in the stacked-MNIST study cell for cell (and each
    stacked_digits report's row in its table of readers, and the r1_read_order counts in experiments/README.md's
    row), and every published file is listed in its folder's README with the command and environment that made
    it."""
    from tests.helpers import load_script

    bench, digits = load_script("mode_collapse"), load_script("stacked_digits")
    study, studies = STUDY.read_text(), (ROOT / "experiments" / "README.md").read_text()
    published = sorted(path for folder in PUBLISHED for path in folder.glob("*.json"))
    assert {path.parent for path in published} == set(PUBLISHED), "each published folder holds JSON"
    for path in published:
        report, listing = json.loads(path.read_text()), (path.parent / "README.md").read_text()
        assert f"`{path.name}`" in listing and report["command"].strip() in listing, path.name
        assert re.fullmatch(r"[0-9a-f]{40}", report["environment"]["source"]["commit"]), path.name
        script = re.match(r"python (\w+)/(\w+)\.py", report["command"]).group(2)
        assert path.parent.parent.name == ("benchmarks" if script in BENCHMARKS else "experiments"), path.name
        if path.name == "r1_read_order.json":  # the studies table's row quotes both counts and the error
            waited, unordered = report["rows"]
            error = f"{unordered['max_relative_error']:.1e}".replace("e-0", "e-")
            quoted = (f"{waited['traces_off']} of {waited['traces']} with the wait, {unordered['traces_off']} of "
                      f"{unordered['traces']} without ({error} of R1 off)")
            assert re.search(rf"^\| `r1_read_order.py` \|.*{re.escape(quoted)}", studies, flags=re.M), quoted
        if path.name.startswith("stacked_digits"):  # its row in the table of readers, as the script prints it
            assert re.search(rf"^{re.escape(digits.summary_row(report))}$", study, flags=re.M), path.name
        for name, result in report.get("results", {}).items():  # mode_collapse.py reports
            key = bench.curve_key(result["dataset"])
            for run in result["runs"]:
                row = re.search(rf"^\| {re.escape(name)}, seed {run['seed']} \|(.*)\|$", study, flags=re.M)
                assert row, f"{path.name}: no row in {STUDY.name} for {name}, seed {run['seed']}"
                cells = [cell.strip() for cell in row.group(1).split("|")]
                assert cells == [bench._curve_cell(point, key) for point in run["curve"]], path.name
