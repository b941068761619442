"""The package as users install it: a wheel carries the demo model, and an install from it runs
the example from any folder with the same result as the source checkout."""

import importlib.util
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import numpy as np
import pytest

from amodal_sam.cli import main
from amodal_sam.mask_files import read_mask

ROOT = Path(__file__).resolve().parents[1]
tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python >= 3.11's tomllib")


def test_every_package_of_the_source_tree_is_listed_for_the_wheel():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    in_tree = {".".join(init.parent.relative_to(ROOT).parts) for init in (ROOT / "amodal_sam").rglob("__init__.py")}
    assert set(config["packages"]) == in_tree | {"amodal_sam.demo_model"}
    assert config["package-dir"] == {"amodal_sam.demo_model": "checkpoints/demo"}
    shipped = sorted(p.name for p in (ROOT / "checkpoints" / "demo").iterdir())
    # README.md: its card; ADOPTION.md: the adoption report that let it replace the model before it
    assert shipped == ["ADOPTION.md", "README.md", "config.json", "model.safetensors", "sam.safetensors"]


def test_a_wheel_installed_elsewhere_completes_the_example_as_the_checkout_does(tmp_path):
    wheels = tmp_path / "wheels"
    # with setuptools at hand, build with it (no index needed: a GPU machine has none); else pip
    # fetches the build backend into an isolated environment
    offline = ["--no-build-isolation"] if importlib.util.find_spec("setuptools") else []
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", *offline, "-w", str(wheels)],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = wheels.glob("amodal_sam-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        demo_files = sorted(n.rsplit("/", 1)[1] for n in archive.namelist() if n.startswith("amodal_sam/demo_model/"))
    assert demo_files == ["ADOPTION.md", "README.md", "config.json", "model.safetensors", "sam.safetensors"]
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    # the fresh environment borrows this one's dependencies (torch, ...) through a path entry,
    # which does not run this environment's .pth files: the editable amodal_sam stays out of it
    site = Path(
        subprocess.run(
            [venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    (site / "borrowed_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    installed = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(venv / "bin" / "python"),
            "install",
            "--no-deps",
            "-q",
            str(wheel),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert installed.returncode == 0, installed.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    image, visible = ROOT / "examples" / "scene.png", ROOT / "examples" / "scene_visible.png"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ""}
    run = subprocess.run(
        [
            venv / "bin" / "python",
            "-c",
            (
                "import amodal_sam, sys; print(amodal_sam.__file__); "
                "from amodal_sam.cli import main; sys.exit(main(sys.argv[1:]))"
            ),
            "complete",
            str(image),
            "--visible",
            str(visible),
            "--out",
            "amodal.png",
        ],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert str(site) in run.stdout.splitlines()[0]  # the installed copy, not the checkout
    assert "Using the DEMO model" in run.stderr and f"{site}/amodal_sam/demo_model" in run.stderr
    assert main(["complete", str(image), "--visible", str(visible), "--out", str(tmp_path / "checkout.png")]) == 0
    np.testing.assert_array_equal(read_mask(elsewhere / "amodal.png"), read_mask(tmp_path / "checkout.png"))


def test_the_public_names_are_the_exported_ones_and_import_lazily():
    import amodal_sam

    assert sorted(amodal_sam.__all__) == sorted(amodal_sam._EXPORTS)
    for name in amodal_sam.__all__:
        assert getattr(amodal_sam, name) is getattr(__import__(amodal_sam._EXPORTS[name], fromlist=[name]), name)
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        amodal_sam.nothing  # noqa: B018


def test_help_and_the_command_line_module_do_not_import_torch():
    # `amodal-sam --help` must come back at once: torch and the models load inside the subcommands
    code = "import sys, amodal_sam.cli, amodal_sam; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert result.stdout.strip() == "False"
