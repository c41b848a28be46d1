"""siap: a single integrated air picture for a coalition.

The Python API mirrors the CLI: :func:`load_scenario`, :func:`simulate`, :func:`evaluate`.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["load_scenario", "simulate", "evaluate", "__version__"]


def __getattr__(name: str):
    # Lazy so that `import siap` stays cheap and rooms import only what they use.
    if name == "load_scenario":
        from siap.scenario import load_scenario

        return load_scenario
    if name == "simulate":
        from siap.simulation import simulate

        return simulate
    if name == "evaluate":
        from siap.evaluation import evaluate

        return evaluate
    raise AttributeError(f"module 'siap' has no attribute {name!r}")
