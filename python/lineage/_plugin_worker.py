"""The worker a natively isolated plugin (``isolation = "process"``) runs in
when the engine runs from Python: ``python -m lineage._plugin_worker``
serves the ``lineage`` binary's worker (``lineage __plugin-worker``) from
the native module, so that a pip-installed package needs no binary beside
it. A crash in the plugin ends this process, not the engine's."""

from . import _lineage

if __name__ == "__main__":
    raise SystemExit(_lineage.serve_plugin_worker())
