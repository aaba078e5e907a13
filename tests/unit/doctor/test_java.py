"""Java's version as `java -version` prints it, judged against what PySpark 4.x runs on."""

from __future__ import annotations

from pathlib import Path

import pytest
from loopline.doctor.java import INSTALL_JAVA, find_java, judge_java, parse_java_version
from loopline.doctor.results import Status


@pytest.mark.parametrize(
    ("output", "major"),
    [
        ('openjdk version "17.0.15" 2025-04-15\nOpenJDK Runtime Environment', 17),
        ('openjdk version "21" 2023-09-19', 21),
        ('java version "1.8.0_392"\nJava(TM) SE Runtime Environment', 8),
        ('openjdk version "11.0.2" 2019-01-15', 11),
        ('openjdk version "25-ea" 2025-09-16', 25),
        ("Error: could not find libjava.so", None),
        ('openjdk version "abc"', None),
    ],
)
def test_the_feature_release_is_read_from_each_vendors_format(
    output: str, major: int | None
) -> None:
    assert parse_java_version(output) == major


def test_java_8_and_11_are_problems_whose_fix_names_17_or_21_and_java_home() -> None:
    for output in ('java version "1.8.0_392"', 'openjdk version "11.0.2" 2019-01-15'):
        result = judge_java(output, Path("/opt/jdk/bin/java"), "JAVA_HOME=/opt/jdk")
        assert result.status is Status.PROBLEM
        assert "PySpark 4.x needs Java 17 or 21" in result.detail
        assert result.fix == INSTALL_JAVA and "JAVA_HOME" in result.fix and "17" in result.fix


def test_java_17_and_21_pass() -> None:
    for output in ('openjdk version "17.0.15"', 'openjdk version "21.0.2"'):
        assert judge_java(output, Path("/usr/bin/java"), "PATH").status is Status.OK


def test_unreadable_output_is_a_problem_quoting_it() -> None:
    result = judge_java("Segmentation fault", Path("/usr/bin/java"), "PATH")
    assert result.status is Status.PROBLEM and "'Segmentation fault'" in result.detail


def test_java_home_wins_over_path_as_in_sparks_launcher() -> None:
    java, source = find_java({"JAVA_HOME": "/opt/jdk-21", "PATH": "/usr/bin"})
    assert (java, source) == (Path("/opt/jdk-21/bin/java"), "JAVA_HOME=/opt/jdk-21")
    assert find_java({"PATH": "/nonexistent"}) == (None, "PATH")
