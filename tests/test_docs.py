"""The documentation cannot drift: its examples run, its CLI page is complete, its links resolve.

- Every ```python block of docs/reference/*.md, docs/guides/*.md and README.md runs, in order, in
  one namespace per page, in a temporary working folder: as a doctest if it holds `>>>` prompts
  (outputs compared, ELLIPSIS and NORMALIZE_WHITESPACE on), else with `exec`. TensorFlow backend,
  tiny models, no training beyond a step. A block right after a line `<!-- example not run:
  REASON -->` (it trains or starts processes) is checked instead (`check_example`): its imports run
  and its calls of keras and keras_dropact callables bind to their signatures.
- docs/reference/cli.md lists exactly the flags and positional arguments of every `dropact`
  subcommand, read from the argparse parser itself.
- docs/reference/models.md's preset table holds the counts of `models/presets.py`.
- Every relative link of every tracked Markdown file points to a file that exists (and, for a
  Markdown target, to a heading that exists), and every `docs/...` path named in any tracked text
  or source file exists.
"""

import argparse
import ast
import doctest
import inspect
import os
import re
import subprocess

import pytest

from tests.conftest import tensorflow_only

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REFERENCE = os.path.join(ROOT, "docs", "reference")
# Folders that are never the project's own files (where `git ls-files` is unavailable).
_NOT_TRACKED = {".git", ".venv", ".venv-ci", ".venv-ci-core", "runs", "saved_models", "__pycache__",
                ".pytest_cache", "build", "dist", ".whl"}
_TEXT = (".md", ".py", ".sh", ".toml", ".cff", ".txt", ".cfg", ".yml", ".yaml", ".json")


def tracked_files():
    """Repository-relative paths of the project's text files: those git tracks or would
    (untracked, not ignored), or, outside a git checkout, every file but the usual build folders."""
    try:
        listing = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                                 cwd=ROOT, capture_output=True, text=True, check=True)
        paths = [p for p in listing.stdout.split() if os.path.isfile(os.path.join(ROOT, p))]
    except (OSError, subprocess.CalledProcessError):
        paths = []
        for folder, subfolders, files in os.walk(ROOT):
            subfolders[:] = [d for d in subfolders if d not in _NOT_TRACKED and not d.endswith(".egg-info")]
            paths += [os.path.relpath(os.path.join(folder, f), ROOT) for f in files]
    return sorted(p for p in paths if p.endswith(_TEXT) or os.path.basename(p) == "run")


def read(path):
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        return f.read()


# --- examples ---------------------------------------------------------------

_FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)


_NOT_RUN = re.compile(r"^<!-- example not run: [^\n]+ -->\n\s*\Z", re.MULTILINE)


def python_blocks(text):
    """(line number, code, runs) of each ```python block of a Markdown text; `runs` is False for a
    block right after a `<!-- example not run: REASON -->` line."""
    return [(text[:m.start()].count("\n") + 2, m.group(2), not _NOT_RUN.search(text[:m.start()]))
            for m in _FENCE.finditer(text) if m.group(1) == "python"]


def run_examples(path, text):
    """Runs the page's python blocks in one namespace (checks those not run); returns doctest's
    (failed, attempted)."""
    namespace = {"__name__": "__docs__"}
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    parser = doctest.DocTestParser()
    for line, code, runs in python_blocks(text):
        if not runs:
            check_example(path, line, code)
        elif ">>>" in code:
            test = parser.get_doctest(code, namespace, f"{path}:{line}", path, line)
            runner.run(test, clear_globs=False)
            namespace.update(test.globs)  # A DocTest runs in a copy of its globals.
        else:
            exec(compile(code, f"{path}:{line}", "exec"), namespace)  # noqa: S102 - our own docs.
    return runner.summarize(verbose=False)


def check_example(path, line, code):
    """Checks a python block that is not run: it compiles, its imports run, and each of its calls of
    a keras or keras_dropact callable binds to that callable's signature (a misspelt keyword fails);
    a keras or keras_dropact class called with literal arguments only is built, so that its own
    checks of the arguments run (`TrainConfig(epochs=-1)`, `DropActivation(sampler="gpu")`,
    `keras.layers.Dense(4, activaton="relu")` fail).

    Raises:
        AssertionError: naming the page, line and call, and the error.
    """
    tree = ast.parse(code, f"{path}:{line}")
    imports = [node for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))]
    namespace = {}
    exec(compile(ast.Module(imports, type_ignores=[]), f"{path}:{line}", "exec"), namespace)  # noqa: S102
    for call in (node for node in ast.walk(tree) if isinstance(node, ast.Call)):
        callee = _resolve(call.func, namespace)
        arguments = _arguments(call)
        if arguments is None or not getattr(callee, "__module__", "").startswith("keras"):
            continue
        (args, kwargs), literal = arguments
        try:
            inspect.signature(callee).bind(*args, **kwargs)
            if literal and isinstance(callee, type):
                callee(*args, **kwargs)
        except (TypeError, ValueError) as error:
            source = ast.get_source_segment(code, call)
            raise AssertionError(f"{path}:{line + call.lineno - 1}: {source}: {error}") from None


def _resolve(node, namespace):
    """The object a name or dotted name of the code stands for after its imports, else None."""
    if isinstance(node, ast.Name):
        return namespace.get(node.id)
    if isinstance(node, ast.Attribute):
        return getattr(_resolve(node.value, namespace), node.attr, None)
    return None


def _arguments(call):
    """((args, kwargs), all literal) of a call, placeholders for values that are not literals;
    None for a call with *args or **kwargs (nothing to bind)."""
    def value(node):
        try:
            return ast.literal_eval(node), True
        except ValueError:
            return object(), False

    if any(isinstance(a, ast.Starred) for a in call.args) or any(k.arg is None for k in call.keywords):
        return None
    args = [value(a) for a in call.args]
    kwargs = {k.arg: value(k.value) for k in call.keywords}
    literal = all(ok for _, ok in args) and all(ok for _, ok in kwargs.values())
    return ([v for v, _ in args], {k: v for k, (v, _) in kwargs.items()}), literal


EXAMPLE_PAGES = [
    *(os.path.join("docs", "reference", f) for f in sorted(os.listdir(REFERENCE)) if f.endswith(".md")),
    *(os.path.join("docs", "guides", f) for f in sorted(os.listdir(os.path.join(ROOT, "docs", "guides")))
      if f.endswith(".md") and python_blocks(read(os.path.join("docs", "guides", f)))),
    "README.md",
]


@tensorflow_only
@pytest.mark.parametrize("path", EXAMPLE_PAGES)
def test_the_examples_run_or_are_checked(path, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # What an example writes stays there.
    text = read(path)
    failed, attempted = run_examples(path, text)
    assert failed == 0, capsys.readouterr().out
    assert attempted == len(re.findall(r"^>>> ", text, re.MULTILINE))


def test_a_wrong_example_output_fails():
    planted = "```python\n>>> 1 + 1\n3\n```\n"
    assert run_examples("planted.md", planted) == (1, 1)
    assert run_examples("planted.md", planted.replace("3", "2")) == (0, 1)


@tensorflow_only
@pytest.mark.parametrize("call, error", [
    ('TrainConfig(modle="simple-cnn", epochs=5)', "unexpected keyword argument 'modle'"),
    ('TrainConfig(model="simple-cnn", epochs=-1)', "--epochs must be in [1, 2147483647]"),
    ('DropActivation(p=0.9, sampler="gpu")', "`sampler`: 'gpu'"),
    ('train(TrainConfig(), resumed=True)', "unexpected keyword argument 'resumed'"),
    ('keras.layers.Dense(4, activaton="relu")', "Unrecognized keyword arguments"),
])
def test_a_misspelt_keyword_or_bad_value_in_an_example_not_run_is_seen(call, error):
    code = ("import keras\nfrom keras_dropact import DropActivation\n"
            "from keras_dropact.training.config import TrainConfig\n"
            f"from keras_dropact.training.train import train\n\nresults = {call}\n")
    page = f"# Page\n\n<!-- example not run: it trains -->\n```python\n{code}```\n"
    assert [runs for _, _, runs in python_blocks(page)] == [False]
    with pytest.raises(AssertionError, match=re.escape(f"planted.md:10: {call}: ") + ".*" + re.escape(error)):
        run_examples("planted.md", page)


# --- the CLI page -----------------------------------------------------------


def subcommand_arguments(parser):
    """{subcommand: {"--flag" or "METAVAR"}} of every `dropact` subcommand, and "" for dropact."""
    def names(command_parser):
        found = set()
        for action in command_parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            if action.option_strings:
                found.update(s for s in action.option_strings if s.startswith("--"))
            else:
                found.add(action.metavar or action.dest.upper())
        return found

    (subparsers,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    arguments = {name: names(sub) for name, sub in subparsers.choices.items()}
    arguments[""] = names(parser)
    return arguments


_SECTION = re.compile(r"^## `dropact ?(\w*)`[^\n]*\n(.*?)(?=^## |\Z)", re.MULTILINE | re.DOTALL)


def documented_arguments(text):
    """{subcommand: {"--flag" or "METAVAR"}} from the first column of each section's table."""
    documented = {}
    for match in _SECTION.finditer(text):
        found = set()
        for row in re.findall(r"^\| `([^`]+)` \|", match.group(2), re.MULTILINE):
            flags = re.findall(r"--[a-z][a-z0-9-]*", row)
            found.update(flags or [row.split()[0]])
        documented[match.group(1)] = found
    return documented


@tensorflow_only
def test_the_cli_reference_lists_every_flag():
    from keras_dropact import cli

    expected = subcommand_arguments(cli.build_parser())
    assert documented_arguments(read("docs/reference/cli.md")) == expected


def test_a_missing_or_invented_flag_is_seen():
    parser = argparse.ArgumentParser(prog="dropact")
    parser.add_argument("--version", action="version", version="1")
    sub = parser.add_subparsers().add_parser("evaluate")
    sub.add_argument("source", metavar="RUN_DIR_OR_MODEL")
    sub.add_argument("--batch-size", type=int)
    page = ("## `dropact`\n\n| flag | meaning |\n|---|---|\n| `--version` | v |\n\n"
            "## `dropact evaluate`\n\n| flag | meaning |\n|---|---|\n| `RUN_DIR_OR_MODEL` | m |\n"
            "| `--batch-size BATCH_SIZE` | b |\n")
    assert documented_arguments(page) == subcommand_arguments(parser)
    assert documented_arguments(page.replace("| `--batch-size BATCH_SIZE` | b |\n", "")) != subcommand_arguments(parser)
    assert documented_arguments(page + "| `--invented` | x |\n") != subcommand_arguments(parser)


# --- the preset table ------------------------------------------------------


def test_the_preset_table_holds_the_presets_counts():
    from keras_dropact import models

    rows = re.findall(r"^\| `([a-z0-9-]+)` \| ([0-9,]+)(?: / ([0-9,]+))?", read("docs/reference/models.md"), re.MULTILINE)
    table = {name: [int(n.replace(",", "")) for n in counts if n] for name, *counts in rows}
    assert table == {name: list(row["params"].values()) for name, row in models.PRESETS.items()}


# --- records and layouts the code defines ----------------------------------


def section(text, heading):
    """The text under `heading` (a whole heading line) up to the next heading of its level."""
    level = heading.split(" ")[0]
    start = text.index(heading + "\n") + len(heading)
    end = re.search(rf"^{level} ", text[start:], re.MULTILINE)
    return text[start:start + end.start()] if end else text[start:]


def schema_keys(text):
    return re.findall(r"^\| `(\w+)` \|", section(text, "## results.json"), re.MULTILINE)


@tensorflow_only
def test_the_results_schema_lists_every_key():
    import dataclasses

    from keras_dropact.training.results import Results

    keys = schema_keys(read("docs/reference/training.md"))
    assert sorted(keys) == sorted(field.name for field in dataclasses.fields(Results))
    assert schema_keys("## results.json\n\n| `status` | all |\n\n## next\n| `x` |") == ["status"]


def exit_statuses(text):
    """The statuses of `dropact train`'s "Exit status 0, 2, ... or 143." sentence."""
    (sentence,) = re.findall(r"Exit status ([\d, or]+)\.", section(text, "## `dropact train`"))
    return sorted(int(n) for n in re.findall(r"\d+", sentence))


@tensorflow_only
def test_the_exit_statuses_are_those_of_the_code():
    from keras_dropact.training import stops

    # "0 done ..., 130/143 stopped by SIGINT/SIGTERM (128 + the signal)"
    codes = sorted(int(n) for n in re.findall(r"(?:^|, |/)(\d+)(?=[ /])", stops.EXIT_CODES))
    assert codes == [0, 2, 3, 74, 130, 143]
    cli_page = read("docs/reference/cli.md")
    assert exit_statuses(cli_page) == codes
    table = re.findall(r"^\| ([\d, ]+) \|", section(cli_page, "## Exit status"), re.MULTILINE)
    assert set(codes) <= {int(n) for row in table for n in row.split(", ")}
    assert exit_statuses("## `dropact train`\nExit status 0, 2 or 3.\n## x") == [0, 2, 3]


@tensorflow_only
def test_the_export_layout_is_the_codes(monkeypatch):
    from keras_dropact.training import export
    from keras_dropact.training import run_files

    monkeypatch.setattr("socket.gethostname", lambda: "HOST")
    monkeypatch.setattr("os.getpid", lambda: "PID")
    temporary = os.path.basename(run_files.temporary_folder(os.path.join("NAME", "2")))
    assert temporary == ".2.tmp-HOST-PID"
    readme, guide = read("saved_models/README.md"), read("docs/guides/serving.md")
    assert f"{temporary}/" in readme and f"NAME/{temporary.replace('2', 'VERSION')}" in guide
    for fmt in ("onnx", "keras"):
        folder = os.path.dirname(export.export_path("ROOT", "resnet-20-cifar10", fmt, 1))
        assert f"{os.path.basename(folder)}/1/" in readme, fmt


# --- links and docs/ paths ---------------------------------------------------

_LINK = re.compile(r"\]\(([^)\s]+)\)")
_DOCS_PATH = re.compile(r"(?<![\w./-])docs/[\w./-]*[\w/]")


def heading_anchors(text):
    """GitHub's anchors of a Markdown text's headings (outside code fences)."""
    anchors, seen = set(), {}
    text = _FENCE.sub("", text)
    for heading in re.findall(r"^#{1,6} +(.+?) *#*$", text, re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def broken_links(path, text):
    """The relative links of Markdown file `path` whose file or heading does not exist."""
    broken = []
    for target in _LINK.findall(_FENCE.sub("", text)):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:, ...
            continue
        file, _, anchor = target.partition("#")
        if not file:  # A heading of this page.
            if anchor not in heading_anchors(text):
                broken.append(target)
            continue
        resolved = os.path.normpath(os.path.join(os.path.dirname(path), file))
        if not os.path.exists(os.path.join(ROOT, resolved)):
            broken.append(target)
        elif anchor and resolved.endswith(".md") and anchor not in heading_anchors(read(resolved)):
            broken.append(target)
    return broken


def missing_docs_paths(text):
    """The `docs/...` paths named in `text` that do not exist under the repository root."""
    return sorted({p for p in _DOCS_PATH.findall(text) if not os.path.exists(os.path.join(ROOT, p))})


def test_every_relative_link_resolves():
    broken = {path: broken_links(path, read(path)) for path in tracked_files() if path.endswith(".md")}
    assert {path: links for path, links in broken.items() if links} == {}


def test_every_docs_path_exists():
    missing = {path: missing_docs_paths(read(path)) for path in tracked_files()}
    assert {path: paths for path, paths in missing.items() if paths} == {}


def test_a_broken_link_or_path_is_seen():
    page = "# Top\n\n## Exact resume\n\n[a](#exact-resume) [b](../reference/cli.md#dropact-train)\n"
    guide = os.path.join("docs", "guides", "planted.md")  # Not a path the path check reads.
    assert broken_links(guide, page) == []
    assert broken_links(guide, page + "[c](#no-such-heading) [d](nowhere.md)\n") == [
        "#no-such-heading", "nowhere.md"]
    assert missing_docs_paths("see docs/reference/cli.md") == []
    assert missing_docs_paths("see " + "docs/" + "runs.md, then docs/guides/") == ["docs/" + "runs.md"]


def test_the_citation_names_this_version_and_the_papers_authors():
    import keras_dropact

    citation = read("CITATION.cff")
    assert re.search(r'^version: "([^"]+)"$', citation, re.MULTILINE).group(1) == keras_dropact.__version__
    authors = re.findall(r"family-names: (\w+)\n\s+given-names: (\w+)", citation)
    assert authors == [("Liang", "Senwei"), ("Khoo", "Yuehaw"), ("Yang", "Haizhao")]
