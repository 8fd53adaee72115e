"""A local server that behaves like the Voxworks API, for tests, benchmarks and first runs.

    config = SandboxConfig(limit=100, window=2.0, kind="sliding", latency=0.05)
    with start_sandbox(config) as sandbox:
        ...  # send to sandbox.base_url with sandbox.api_key
        created = sandbox.calls()

`batchcall sandbox` runs the same server from the command line (see `_cli.sandbox_command`).
"""

from ._app import create_app
from ._config import SandboxConfig
from ._server import RunningSandbox, start_sandbox
from ._store import TEAM_FROM_NUMBERS, TEAM_SCRIPT_IDS

__all__ = [
    "TEAM_FROM_NUMBERS",
    "TEAM_SCRIPT_IDS",
    "RunningSandbox",
    "SandboxConfig",
    "create_app",
    "start_sandbox",
]
