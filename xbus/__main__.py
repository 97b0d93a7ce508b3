"""`python -m xbus` is the `xbus` command."""

from xbus.cli.app import main

main()
