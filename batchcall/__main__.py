"""`python -m batchcall`: the same command line as the `batchcall` script."""

from .cli import main

main(prog_name="batchcall")
