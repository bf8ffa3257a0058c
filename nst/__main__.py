"""`python -m nst` runs the same entry point as the `nst` command."""

from nst.run import main

main()
