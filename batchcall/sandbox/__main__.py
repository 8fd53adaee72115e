"""`python -m batchcall.sandbox --port N`: the same command as `batchcall sandbox`."""

from ._cli import sandbox_command

if __name__ == "__main__":
    sandbox_command(prog_name="python -m batchcall.sandbox")
