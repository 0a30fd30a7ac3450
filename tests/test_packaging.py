"""The distribution: one top-level package, enforced layering, no shadowing.

The wheel is built once per session from this checkout; the layering
contracts of `pyproject.toml` are checked with import-linter on the wheel's
files, where `models/` and `pipelines/` sit at their installed place
(`keras_dropact/models`, `keras_dropact/pipelines`).
"""

import ast
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "-q", "-w", str(out), ROOT],
        check=True, capture_output=True, text=True,
    )
    (path,) = [out / name for name in os.listdir(out) if name.endswith(".whl")]
    return path


@pytest.fixture(scope="module")
def unpacked(wheel, tmp_path_factory):
    target = tmp_path_factory.mktemp("unpacked")
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(target)
    return target


def test_the_wheel_installs_keras_dropact_only(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    top_level = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top_level == {"keras_dropact"}
    for module in ("models/__init__.py", "models/presets.py", "pipelines/__init__.py",
                   "layers/shortcut.py", "training/train.py", "cli.py"):
        assert f"keras_dropact/{module}" in names
    (top_level_txt,) = [n for n in names if n.endswith(".dist-info/top_level.txt")]
    with zipfile.ZipFile(wheel) as archive:
        assert archive.read(top_level_txt).decode().split() == ["keras_dropact"]


def test_the_core_depends_on_keras_and_numpy_only(wheel):
    with zipfile.ZipFile(wheel) as archive:
        (metadata,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        lines = archive.read(metadata).decode().splitlines()
    requires = [line.split(":", 1)[1].strip() for line in lines if line.startswith("Requires-Dist:")]
    core = sorted(r.split(">")[0].split("=")[0].strip() for r in requires if "extra ==" not in r)
    assert core == ["keras", "numpy"]
    extras = sorted(line.split(":", 1)[1].strip() for line in lines if line.startswith("Provides-Extra:"))
    assert extras == ["dev", "hub", "jax", "onnx", "repro", "torch", "train"]


def _lint_imports(unpacked):
    return subprocess.run(
        [shutil.which("lint-imports") or os.path.join(os.path.dirname(sys.executable), "lint-imports"),
         "--config", os.path.join(ROOT, "pyproject.toml"), "--no-cache"],
        cwd=unpacked, env={**os.environ, "PYTHONPATH": str(unpacked)},
        capture_output=True, text=True,
    )


def test_the_layering_contracts_hold(unpacked):
    result = _lint_imports(unpacked)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 kept, 0 broken" in result.stdout


@pytest.mark.parametrize("module, line, chain", [
    ("layers/shortcut.py", "from keras_dropact.training import recipes  # upward",
     "keras_dropact.layers.shortcut -> keras_dropact.training"),
    ("training/run.py", "import jax  # a backend dependency outside the runtime",
     "keras_dropact.training.run -> jax"),
    # Issue 25: config and run_dir, runtime and the two runtimes imported each other.
    ("training/runtime.py", "def _make():\n    from keras_dropact.training import strategies",
     "No cycles are allowed in keras_dropact.training"),
])
def test_a_forbidden_import_breaks_the_contracts(unpacked, tmp_path, module, line, chain):
    broken = tmp_path / "broken"
    shutil.copytree(unpacked / "keras_dropact", broken / "keras_dropact")
    with open(broken / "keras_dropact" / module, "a") as f:
        f.write(f"\n{line}\n")
    result = _lint_imports(broken)
    assert result.returncode != 0
    assert chain in result.stdout


# The modules of training/ that may use tf.distribute: the runtimes.
RUNTIMES = ("tf_runtime.py", "jax_runtime.py")


def tf_distribute_uses(source):
    """Lines of `source` that import tensorflow.distribute or use `tf.distribute`.

    import-linter sees imports of packages only, not `tf.distribute.X`
    attribute use after `import tensorflow as tf`; this sees both.
    """
    tree = ast.parse(source)
    distribute = ("tensorflow.distribute", "tensorflow.python.distribute")
    names, lines = set(), []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "tensorflow" or alias.name.startswith("tensorflow."):
                    names.add(alias.asname or "tensorflow")
                if alias.name.startswith(distribute):
                    lines.append(node.lineno)
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module.startswith(distribute) or (
                node.module in ("tensorflow", "tensorflow.python")
                and any(alias.name == "distribute" for alias in node.names)
            ):
                lines.append(node.lineno)
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and node.attr == "distribute"
                and isinstance(node.value, ast.Name) and node.value.id in names):
            lines.append(node.lineno)
    return sorted(set(lines))


def test_only_the_runtimes_use_tf_distribute():
    folder = os.path.join(ROOT, "keras_dropact", "training")
    uses = {}
    for name in sorted(os.listdir(folder)):
        if name.endswith(".py"):
            with open(os.path.join(folder, name)) as f:
                uses[name] = tf_distribute_uses(f.read())
    assert {name: lines for name, lines in uses.items() if lines and name not in RUNTIMES} == {}
    assert uses["tf_runtime.py"] and uses["jax_runtime.py"]  # The check sees real uses.


@pytest.mark.parametrize("planted", [
    "import tensorflow as tf\nstrategy = tf.distribute.get_strategy()\n",
    "import tensorflow\nstrategy = tensorflow.distribute.MirroredStrategy()\n",
    "from tensorflow import distribute\n",
    "import tensorflow.distribute as td\n",
    "from tensorflow.python.distribute import values\n",
])
def test_the_tf_distribute_check_sees_a_planted_use(planted):
    assert tf_distribute_uses(planted)
    assert tf_distribute_uses("import tensorflow as tf\ndata = tf.data.Dataset.range(3)\n") == []


def test_a_users_models_and_pipelines_do_not_shadow_ours(tmp_path):
    # A user's script folder with its own `models.py` and `pipelines/`.
    (tmp_path / "models.py").write_text("raise RuntimeError('the user module was imported')\n")
    (tmp_path / "pipelines").mkdir()
    (tmp_path / "pipelines" / "__init__.py").write_text("raise RuntimeError('user pipelines')\n")
    script = textwrap.dedent(
        """
        from keras_dropact import models, pipelines
        model = models.build("resnet-20")
        print(sum(int(w.numpy().size) for w in model.trainable_weights))
        print(pipelines.info("digits")["num_classes"])
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True,
        env={**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["269722", "10"]


def test_a_missing_extra_is_one_line_naming_it(tmp_path):
    # A core install on JAX: TensorFlow cannot be imported.
    script = textwrap.dedent(
        """
        import sys
        sys.modules["tensorflow"] = None
        from keras_dropact import cli
        sys.exit(cli.main(["train"]))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True,
        env={**os.environ, "KERAS_BACKEND": "jax"},
    )
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.startswith("dropact")]
    assert len(lines) == 1 and "pip install 'keras-dropact[train]'" in lines[0]
    assert "Traceback" not in result.stderr
