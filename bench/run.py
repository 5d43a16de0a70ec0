"""Run every bench/bench_*.py in turn and print what each measured (ratios against a
baseline taken in the same run, on this machine)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

here = Path(__file__).resolve().parent
failed = 0
for script in sorted(here.glob("bench_*.py")):
    print(f"== {script.stem.removeprefix('bench_')}", flush=True)
    result = subprocess.run([sys.executable, str(script)], cwd=here.parent)
    failed += result.returncode != 0
sys.exit(1 if failed else 0)
