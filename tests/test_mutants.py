"""tools/mutants.py on a tiny fake repository: a caught mutant, a survivor and
stale ones, the package-dir folders of pyproject.toml imported from the scratch
copy, and the working tree never written."""

import importlib.util
import os
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_SPEC = importlib.util.spec_from_file_location("mutants", os.path.join(ROOT, "tools", "mutants.py"))
mutants = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(mutants)

FILES = {
    "pyproject.toml": '[project]\nname = "calc"\n\n[tool.setuptools.package-dir]\n"calc.extra" = "extra"\n',
    "pytest.ini": "[pytest]\n",
    ".gitignore": "ignored/\n",
    "ignored/big.bin": "not copied\n",
    "calc/__init__.py": "def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a - b\n",
    "extra/__init__.py": "def double(x):\n    return 2 * x\n",
    "tests/test_calc.py": ("from calc import add\nfrom calc.extra import double\n\n\n"
                           "def test_add():\n    assert add(2, 3) == 5\n\n\n"
                           "def test_double():\n    assert double(4) == 8\n"),
}


def mutant(name, file, find, replace, tests):
    return mutants.Mutant(name, file, find, replace, tuple(tests), "planted")


@pytest.fixture
def repo(tmp_path):
    if shutil.which("git") is None:
        pytest.skip("the script lists the repository's files with git")
    for relative, text in FILES.items():
        os.makedirs(os.path.dirname(tmp_path / "repo" / relative), exist_ok=True)
        (tmp_path / "repo" / relative).write_text(text)
    subprocess.run(["git", "init", "-q"], cwd=tmp_path / "repo", check=True)
    return tmp_path / "repo"


def snapshot(folder):
    return {os.path.relpath(os.path.join(d, n), folder): open(os.path.join(d, n), "rb").read()
            for d, _, names in os.walk(folder) if ".git" not in d.split(os.sep) for n in names}


def test_caught_and_surviving_mutants_on_a_scratch_copy(repo):
    before = snapshot(repo)
    lines = []
    results = mutants.run([
        mutant("add-subtracts", "calc/__init__.py", "return a + b", "return a - b", ["tests/test_calc.py::test_add"]),
        mutant("sub-adds", "calc/__init__.py", "return a - b", "return a + b", ["tests/test_calc.py"]),
        # extra/ is calc.extra only through pyproject's package-dir: the copy's own is tested.
        mutant("double-triples", "extra/__init__.py", "2 * x", "3 * x", ["tests/test_calc.py::test_double"]),
    ], source=str(repo), out=lines.append)
    assert results == {"add-subtracts": "caught", "sub-adds": "survived", "double-triples": "caught"}
    assert lines[0].startswith("unmutated: 3 test selections pass")
    assert [line.split()[:2] for line in lines[1:]] == [
        ["caught", "add-subtracts"], ["survived", "sub-adds"], ["caught", "double-triples"]]
    assert lines[1].endswith(" by tests/test_calc.py::test_add")  # The test that failed.
    assert snapshot(repo) == before


def test_the_copy_holds_what_git_would_track(repo, tmp_path):
    mutants.scratch_copy(str(repo), str(tmp_path / "copy"))
    copied = snapshot(tmp_path / "copy")
    assert sorted(copied) == sorted(name for name in FILES if not name.startswith("ignored/"))
    assert os.path.islink(tmp_path / "copy" / "calc" / "extra")


@pytest.mark.parametrize("planted, problem", [
    (mutant("gone", "calc/__init__.py", "return a * b", "", ["tests/test_calc.py"]), "occurs 0 times"),
    (mutant("twice", "calc/__init__.py", "    return", "", ["tests/test_calc.py"]), "occurs 2 times"),
    (mutant("no-file", "calc/missing.py", "x", "y", ["tests/test_calc.py"]), "does not exist"),
    (mutant("no-test", "calc/__init__.py", "a + b", "a - b", ["tests/test_calc.py::test_none"]), "no test"),
])
def test_a_mutant_that_no_longer_applies_is_an_error(repo, planted, problem):
    before = snapshot(repo)
    with pytest.raises(mutants.Stale, match=problem):
        mutants.run([planted], source=str(repo), out=lambda line: None)
    assert snapshot(repo) == before


def test_every_mutant_of_the_list_applies_to_this_repository(tmp_path):
    # Each `find` text occurs once in its file (the list is kept up to date);
    # the tests it names exist. The mutants themselves run with the script.
    def text(path):
        with open(os.path.join(ROOT, path), encoding="utf-8") as f:
            return f.read()

    names = [m.name for m in mutants.MUTANTS]
    assert len(names) == len(set(names))
    stale = [m.name for m in mutants.MUTANTS if text(m.file).count(m.find) != 1]
    missing = [(m.name, test) for m in mutants.MUTANTS for test in m.tests
               if "::" in test and f"def {test.split('::')[1]}(" not in text(test.split("::")[0])]
    assert stale == [] and missing == []
