"""`batchcall sandbox`: the local Voxworks-compatible server, on 127.0.0.1 only."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Any

import click
import uvicorn

from ._app import ADMIN_PREFIX, API_PATH, create_app
from ._config import SandboxConfig
from ._options import OPTIONS
from ._server import READY_LINE, NotifyingServer, bind, quiet_deliberate_drops, uvicorn_config

EPILOG = f"""
\b
Example: a 100-requests-per-2-seconds fixed window with 50 ms latency and
2% dropped connections, remembering calls across restarts:
  batchcall sandbox --port 8765 --limit 100 --window 2 --kind fixed \\
      --latency 0.05 --fault-drop-after 0.02 --db sandbox.sqlite
then, in another shell, with the key it printed:
  export VOXWORKS_API_KEY=<key> VOXWORKS_BASE_URL=http://127.0.0.1:8765
  batchcall run sample_data/contacts.csv --from-number +61291234567 \\
      --script-id a1b2c3d4-e5f6-7890-abcd-ef1234567890

\b
It serves POST {API_PATH}. Admin endpoints, with the same bearer key:
  GET {ADMIN_PREFIX}/calls     every call created
  GET {ADMIN_PREFIX}/stats     requests by status, 429s, calls created
  POST {ADMIN_PREFIX}/config   change limits, faults or blocked phones (JSON)
  POST {ADMIN_PREFIX}/reset    forget everything
"""


def _with_options(command: Any) -> Any:
    defaults = SandboxConfig(api_key="x")
    for name, kind, help_text in reversed(OPTIONS):
        default = getattr(defaults, name)
        command = click.option(
            f"--{name.replace('_', '-')}",
            name,
            type=kind,
            default=default,
            show_default=default is not None,
            help=help_text,
        )(command)
    return command


@click.command("sandbox", epilog=EPILOG)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8765,
    show_default=True,
    help="Port on 127.0.0.1 (0: any free port).",
)
@_with_options
@click.option(
    "--reject-phone",
    "reject_phones",
    multiple=True,
    metavar="E164",
    help="Answer 400 for this contact number (repeatable).",
)
@click.option(
    "--db",
    "db_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="SQLite file that keeps calls and Idempotency-Keys across restarts.",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="warning",
    show_default=True,
    help="uvicorn's log level.",
)
def sandbox_command(port: int, log_level: str, **options: Any) -> None:
    """Run a local server that behaves like the Voxworks API, on 127.0.0.1.

    It accepts the key in VOXWORKS_API_KEY when that is set; otherwise it makes up a throwaway
    key and prints it.
    """
    env_key = os.environ.get("VOXWORKS_API_KEY") or None
    try:
        config = SandboxConfig(api_key=env_key, **options).with_key()
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    app = create_app(config)
    sock = bind(port)
    base_url = "http://{}:{}".format(*sock.getsockname())

    def announce() -> None:
        click.echo(f"{READY_LINE}{base_url}")
        if env_key:
            click.echo("API key: the one in VOXWORKS_API_KEY")
        else:
            click.echo(f"API key: {config.api_key}  (throwaway; set VOXWORKS_API_KEY to choose)")
            click.echo(
                f"Use it:  export VOXWORKS_API_KEY={config.api_key} VOXWORKS_BASE_URL={base_url}"
            )
        click.echo(f"Calls created: GET {base_url}{ADMIN_PREFIX}/calls   Ctrl-C stops.")
        sys.stdout.flush()

    quiet_deliberate_drops()
    server = NotifyingServer(
        uvicorn_config(app, log_config=uvicorn.config.LOGGING_CONFIG, log_level=log_level),
        on_started=announce,
    )
    # uvicorn re-raises Ctrl-C once it has shut down; for a server that is the normal end.
    with contextlib.suppress(KeyboardInterrupt):
        server.run(sockets=[sock])
    click.echo("batchcall sandbox stopped")
