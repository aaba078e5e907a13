"""The Prometheus the local stack runs: where its binary is, its generated config, its command.

It scrapes two jobs: ``loopline`` (the exporter: records as metrics and Airflow's metrics)
and ``replicas`` (each streaming replica's /metrics, from a file_sd targets file the
exporter keeps up to date). Its binary is Debian's ``prometheus`` package unpacked into the
project by ``make prometheus`` (``.loopline/tools/prometheus``), or one on PATH.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from loopline.runtime.files import write_atomically

TOOLS_BINARY = Path(".loopline/tools/prometheus/usr/bin/prometheus")
BINARY_ENV = "LOOPLINE_PROMETHEUS"
SCRAPE_ENV = "LOOPLINE_PROMETHEUS_SCRAPE_SECONDS"
TARGETS_FILE = "targets/replicas.json"
HOW_TO_GET = (
    "`make prometheus` unpacks Debian's package into .loopline/tools/prometheus "
    "(or install one on PATH: apt-get install prometheus, brew install prometheus)"
)


def prometheus_binary(project_root: Path) -> Path | None:
    """``$LOOPLINE_PROMETHEUS`` (which must exist), else the project's unpacked copy, else
    ``prometheus`` on PATH; None where there is none."""
    named = os.environ.get(BINARY_ENV)
    if named:
        path = Path(named)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise FileNotFoundError(f"{BINARY_ENV}={named} is not an executable file")
        return path
    local = project_root / TOOLS_BINARY
    if local.is_file() and os.access(local, os.X_OK):
        return local
    found = shutil.which("prometheus")
    return Path(found) if found else None


def scrape_seconds() -> float:
    seconds = float(os.environ.get(SCRAPE_ENV) or 15)
    if not 1 <= seconds <= 300:
        raise ValueError(f"{SCRAPE_ENV} must be between 1 and 300 seconds, not {seconds}")
    return seconds


def write_config(folder: Path, exporter: str, every: float) -> Path:
    """prometheus.yml in `folder`, scraping the exporter at `exporter` (host:port) and the
    replicas of ``targets/replicas.json`` every `every` seconds; returns its path."""
    targets = folder / TARGETS_FILE
    if not targets.exists():  # Prometheus warns about a missing file: start with no replica
        write_atomically(targets, b"[]\n", durable=False)
    # honor_labels: a replica's own pipeline and slot labels are the same as the target's.
    config = f"""# Written by `loopline stack up` (loopline.telemetry.prometheus): edits go.
global:
  scrape_interval: {every:g}s
  evaluation_interval: {every:g}s
scrape_configs:
  - job_name: loopline
    static_configs:
      - targets: ["{exporter}"]
  - job_name: replicas
    honor_labels: true
    file_sd_configs:
      - files: ["{targets}"]
        refresh_interval: {max(every, 5):g}s
"""
    path = folder / "prometheus.yml"
    write_atomically(path, config.encode(), durable=False)
    return path


def prometheus_argv(binary: Path, config: Path, data: Path, address: str) -> list[str]:
    """The command line: loopback only, its data beside its config, two weeks kept."""
    return [
        str(binary),
        f"--config.file={config}",
        f"--storage.tsdb.path={data}",
        f"--web.listen-address={address}",
        "--storage.tsdb.retention.time=15d",
        # Debian's defaults point at /etc/prometheus, absent when the package is unpacked
        # into the project rather than installed.
        f"--web.console.templates={config.parent / 'consoles'}",
        f"--web.console.libraries={config.parent / 'console_libraries'}",
    ]
