"""``python -m dtf`` is the ``dtf`` command."""

from dtf.cli import main

main()
