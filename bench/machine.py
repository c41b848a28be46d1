"""The machine a benchmark ran on, recorded in every results file."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import numpy as np


def machine_info() -> dict:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = dict(
        platform=platform.platform(),
        cpu_model=cpu or platform.processor(),
        cpu_count=os.cpu_count(),
        python=platform.python_version(),
        numpy=np.__version__,
    )
    try:
        import stonesoup

        info["stonesoup"] = stonesoup.__version__
    except Exception:  # pragma: no cover - optional
        info["stonesoup"] = None
    try:
        import siap

        info["siap"] = siap.__version__
    except Exception:  # pragma: no cover
        info["siap"] = None
    return info
