"""The edges to a mail server: the Mailbox protocol, folder layout, the memory twin, IMAP."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import types


def _imapclient_version() -> None:
    """imapclient's version module asks importlib.metadata for the package's version as
    it is imported: loading that machinery takes about 20 ms, a third of what a login
    waits on before its first command (app/connect.py). The same version is read here
    from the installed distribution's directory name; where that is not plain, the
    library's own module runs as it would."""
    if "imapclient" in sys.modules:
        return
    spec = importlib.util.find_spec("imapclient")
    if spec is None or spec.origin is None:
        return
    site = os.path.dirname(os.path.dirname(spec.origin))
    try:
        names = [n for n in os.listdir(site) if n.lower().startswith("imapclient-")
                 and n.endswith(".dist-info")]
    except OSError:
        return
    if len(names) != 1:
        return
    version = names[0][len("imapclient-"):-len(".dist-info")]
    parts = version.split(".")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        return  # (a pre-release: imapclient's own module says what it makes of it)
    module = types.ModuleType("imapclient.version")
    module.version = version  # type: ignore[attr-defined]
    module.version_info = (int(parts[0]), int(parts[1]), int(parts[2]), "final")  # type: ignore[attr-defined]

    def missing(name: str) -> object:
        # (A name a later imapclient reads from it: its own module, imported after all.)
        if name.startswith("__"):
            raise AttributeError(name)
        sys.modules.pop(module.__name__, None)
        return getattr(importlib.import_module(module.__name__), name)

    module.__getattr__ = missing  # type: ignore[method-assign]
    sys.modules[module.__name__] = module


_imapclient_version()
