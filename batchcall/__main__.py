"""`python -m batchcall`: the same command line as the `batchcall` script."""

from ._cli import main

main(prog_name="batchcall")
