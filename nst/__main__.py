"""`python -m nst` runs the same entry point as the `nst` command."""

from nst.cli import main

main()
