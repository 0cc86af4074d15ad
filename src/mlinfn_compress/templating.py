"""The Jinja2 environment of a package's templates: each renderer reads the ``templates/`` folder beside it."""

from __future__ import annotations

import functools
from importlib import resources

import jinja2


@functools.cache
def environment(package: str) -> jinja2.Environment:
    """The templates of ``package`` (its ``templates/`` folder), undefined names an error, blocks trimmed."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(resources.files(package) / "templates")),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
