"""Start-up benchmark: `layra-migrate --help` vs `python -c "import typer, rich"`.

Both run in the same interpreter environment; best of N wall times. Target <= 1.5.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path


def _best(cmd: list[str], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        best = min(best, time.perf_counter() - t)
    return best


def bench(repeat: int = 7) -> dict[str, float]:
    """Best-of-``repeat`` wall times of both commands, interleaved, and their ratio."""
    py = sys.executable
    # The installed console script, as an operator runs it.
    # warm the file cache once each
    script = Path(py).parent / "layra-migrate"
    tool_cmd = [str(script), "--help"] if script.exists() else [py, "-m", "layra_migrate", "--help"]
    _best(tool_cmd, 1)
    _best([py, "-c", "import typer, rich"], 1)
    tool = base = float("inf")
    for _ in range(repeat):  # interleaved so machine noise hits both alike
        tool = min(tool, _best(tool_cmd, 1))
        base = min(base, _best([py, "-c", "import typer, rich"], 1))
    return {
        "startup_s": round(tool, 3),
        "startup_baseline_s": round(base, 3),
        "startup_ratio": round(tool / base, 3),
        "startup_repeat": repeat,
    }


if __name__ == "__main__":
    print(json.dumps(bench()))
