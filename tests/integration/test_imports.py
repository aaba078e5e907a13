"""Every module below the Airflow layer imports without pulling Airflow in, transitively.

The unit tier checks import statements; this imports each module for real, in a fresh
interpreter, so a library that imports Airflow behind our back is caught too.
"""

from __future__ import annotations

import subprocess
import sys

CODE = """
import importlib, pathlib, sys
import loopline
root = pathlib.Path(loopline.__file__).parent
files = [p.relative_to(root.parent).with_suffix("") for p in sorted(root.rglob("*.py"))]
names = [".".join(f.parts[:-1] if f.name == "__init__" else f.parts) for f in files]
below = [n for n in names if not n.startswith("loopline.airflow")]  # found without importing
for name in below:
    importlib.import_module(name)
print(len(below))
print(sorted(m for m in sys.modules if m == "airflow" or m.startswith("airflow.")))
"""


def test_no_module_below_the_airflow_layer_imports_airflow() -> None:
    result = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    count, leaked = result.stdout.strip().splitlines()[-2:]
    assert int(count) > 50
    assert leaked == "[]"
