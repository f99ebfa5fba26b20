"""``python -m dtf`` is the ``dtf`` command."""

from dtf.command_server import launch

launch()
