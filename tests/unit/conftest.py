"""The unit tier: pure logic, in seconds (`make test-fast`).

Every unit test, and the import of every unit test module, runs under support.guard: a heavy
library (Airflow, TensorFlow/Keras, Great Expectations, pyspark, Evidently), a process or a
socket fails it with UnitTierViolation, which says to move the test to tests/component. The
shared servers of the other tiers are not offered here either.
"""

from __future__ import annotations

from collections.abc import Iterator

import croniter  # noqa: F401  (see below)
import pytest
from loopline.records import lineage
from support import guard

# croniter (the spec's schedule check) runs `file -b <python>` when first imported, to learn
# the word size (platform.architecture): a library's one-off probe, not the test's doing, so it
# is imported above, before the guard is on.
guard.install_import_blocker()


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Iterator[None]:
    """Importing a unit test module may not start a process or open a socket either."""
    if not isinstance(collector, pytest.Module):
        return (yield)
    with pytest.MonkeyPatch.context() as patches:
        guard.forbid_processes_and_sockets(patches)
        return (yield)


CALL_FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    report = yield
    if report.when == "call" and report.failed:
        item.stash[CALL_FAILED] = True
    return report


@pytest.fixture(autouse=True)
def pure(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # Records name the code that made them: from $LOOPLINE_CODE_VERSION as in the image, not
    # from `git rev-parse` (a process). The lookup is cached, so the cache is dropped after the
    # test: a later tier in this process asks git as before.
    monkeypatch.setenv(lineage.CODE_VERSION_ENV, "unit-tier")
    lineage.code_version.cache_clear()
    refused = guard.forbid_processes_and_sockets(monkeypatch)
    yield
    lineage.code_version.cache_clear()
    # A refusal the test caught and dropped (a broad `except`) still fails it; one that failed
    # the test already is not reported twice.
    if refused and not request.node.stash.get(CALL_FAILED, False):
        pytest.fail(f"the unit test {' and '.join(sorted(set(refused)))}: {guard.MOVE_IT}")


def _no_server_here(name: str) -> None:
    pytest.fail(f"the unit tier has no {name}: {guard.MOVE_IT}")


# The shared servers of tests/conftest.py, withheld: asking for one fails before it starts.
@pytest.fixture(scope="session")
def s3_server() -> None:
    _no_server_here("S3 server")


@pytest.fixture(scope="session")
def kafka_broker() -> None:
    _no_server_here("Kafka broker")


@pytest.fixture(scope="session")
def airflow_db() -> None:
    _no_server_here("Airflow database")
