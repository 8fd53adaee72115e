"""The package's public surface: exactly what `__all__` lists, typed, and versioned."""

from __future__ import annotations

import subprocess
import sys
import types
from importlib.metadata import version
from pathlib import Path

import batchcall


def test_public_names_are_exactly_those_in_all():
    """`from batchcall import *` and `dir(batchcall)` agree: every public name is in `__all__`,
    every name in `__all__` exists, and `__all__` is sorted; modules are private (`_load`, ...)
    except the `sandbox` package."""
    public = {
        name
        for name, value in vars(batchcall).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert public | {"__version__"} == set(batchcall.__all__)
    assert batchcall.__all__ == sorted(batchcall.__all__)
    modules = {n for n, v in vars(batchcall).items() if isinstance(v, types.ModuleType)}
    assert {m for m in modules if not m.startswith("_")} <= {"sandbox"}


def test_the_types_run_takes_are_exported():
    """A caller can annotate its own code with the types `batchcall.run` takes and returns."""
    for name in ("Settings", "Progress", "Summary"):
        assert name in batchcall.__all__


def test_version_comes_from_the_installed_package_and_types_ship():
    """`batchcall.__version__` is the distribution's version, and `py.typed` marks the
    package as typed for mypy users."""
    assert batchcall.__version__ == version("batchcall")
    assert (Path(batchcall.__file__).parent / "py.typed").is_file()


def test_the_cli_loads_the_sandbox_server_only_for_the_commands_that_need_it():
    """`batchcall --help` and `batchcall status` start without uvicorn or starlette, which only
    the sandbox needs."""
    probe = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from batchcall._cli import main\n"
        "CliRunner().invoke(main, ['--help'])\n"
        "print(sorted(m for m in ('uvicorn', 'starlette', 'tqdm', 'pandas') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
