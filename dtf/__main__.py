"""``python -m dtf`` is the ``dtf`` command."""

from dtf.cli import entry_point

entry_point()
