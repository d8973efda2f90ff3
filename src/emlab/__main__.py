"""`python -m emlab` runs the CLI."""

from emlab.cli import main

main()
