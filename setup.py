"""Which packages the dtf distribution holds; the rest of its metadata is in setup.cfg.

``workers/`` and ``integrations/`` install as ``dtf.workers`` and ``dtf.integrations``:
a project's own ``workers`` or ``integrations`` folder, first on ``sys.path`` in every
process started in it, can then never stand in for dtf's.
"""

from setuptools import find_namespace_packages, setup

FOLDERS = {"dtf.workers": "workers", "dtf.integrations": "integrations"}


def _packages() -> list[str]:
    skip = ["*.__pycache__"]
    found = find_namespace_packages(include=["dtf", "dtf.*"], exclude=skip)
    for name, folder in FOLDERS.items():
        found += [name, *(f"{name}.{sub}" for sub in find_namespace_packages(folder, exclude=skip))]
    return found


setup(packages=_packages(), package_dir=FOLDERS)
