"""Where the marketlab checkout is, and its folders: the one place that knows.

    from marketlab import paths
    paths.labs()       # <checkout>/labs, or a clear MarketlabError saying what is missing and how to fix it
    paths.checkout()   # $MARKETLAB_CHECKOUT, else the folder the package was installed from (editable)

The package is installed editable from a checkout (`make lab`), so by default the checkout is the
folder above `marketlab/`. Set MARKETLAB_CHECKOUT when the package runs from somewhere else (a wheel in
a hub image, a copied venv) to name the checkout whose labs, graders and datasets to use. Folders with
their own variable (MARKETLAB_GRADERS, MARKETLAB_DATA) keep it: those are read where they are used.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import MarketlabError

CHECKOUT_VARIABLE = "MARKETLAB_CHECKOUT"


class CheckoutError(MarketlabError, FileNotFoundError):
    """The checkout, or one of its folders, is not where marketlab looks for it."""


def checkout() -> Path:
    """The marketlab checkout: $MARKETLAB_CHECKOUT, else the folder the package was installed from."""
    configured = os.environ.get(CHECKOUT_VARIABLE, "").strip()
    if configured:
        return Path(configured).expanduser().resolve()
    return Path(__file__).resolve().parent.parent


def folder(name: str, *, must_exist: bool = True) -> Path:
    """`name` under the checkout (labs, graders, datasets, instructor...), checked to be a folder."""
    path = checkout() / name
    if must_exist and not path.is_dir():
        where = (f"{CHECKOUT_VARIABLE} is {os.environ[CHECKOUT_VARIABLE]!r}"
                 if os.environ.get(CHECKOUT_VARIABLE, "").strip() else
                 f"the package was installed from {checkout()}")
        raise CheckoutError(
            f"marketlab looks for its {name} folder at {path}, and it is not there ({where}).",
            f"Set {CHECKOUT_VARIABLE} to the folder of your marketlab checkout (the one that holds labs/, "
            f"graders/ and datasets/), or reinstall from the checkout with `make lab`.")
    return path


def labs() -> Path:
    """The labs' notebooks: <checkout>/labs."""
    return folder("labs")


def graders() -> Path:
    """The hidden tests: <checkout>/graders."""
    return folder("graders")


def datasets() -> Path:
    """The course's data: <checkout>/datasets."""
    return folder("datasets")


def instructor() -> Path:
    """The instructor's files (nbgrader config template, the hub's files): <checkout>/instructor."""
    return folder("instructor")
