"""Reports of a run: JUnit XML, JSON, Markdown and HTML, rendered from one report model.

The names live here so the CLI can offer them without importing the renderers.
"""

#: The report formats, by the name ``--format`` and ``--report FORMAT=FILE`` take.
FORMAT_NAMES: tuple[str, ...] = ("junit", "json", "markdown", "html")
#: The format a file name implies when none is given.
SUFFIXES: dict[str, str] = {
    ".xml": "junit",
    ".json": "json",
    ".md": "markdown",
    ".markdown": "markdown",
    ".html": "html",
    ".htm": "html",
}
