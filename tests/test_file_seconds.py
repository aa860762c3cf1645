"""The order `make test` hands its files to pytest-xdist: each file's seconds from a JUnit XML, the slowest first."""

from pathlib import Path

from file_seconds import load, seconds_per_file, slowest_first

JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" tests="4">
<testcase classname="tests.test_quick" name="test_a" time="0.5" />
<testcase classname="tests.test_stack" name="test_b[1]" time="40.0" />
<testcase classname="tests.test_stack.TestGroup" name="test_c" time="2.25" />
<testcase classname="tests.test_quick" name="test_d" time="0.25"><skipped message="no" /></testcase>
</testsuite></testsuites>
"""


def test_each_file_sums_its_tests_classes_included(tmp_path: Path) -> None:
    junit = tmp_path / "junit.xml"
    junit.write_text(JUNIT)
    seconds = seconds_per_file(junit)
    assert seconds == {"tests/test_stack.py": 42.2, "tests/test_quick.py": 0.8}
    assert list(seconds) == ["tests/test_stack.py", "tests/test_quick.py"]  # the table reads slowest first


def test_the_slowest_file_first_a_new_one_before_all_and_each_files_tests_together_in_order() -> None:
    node_ids = [
        "tests/test_a.py::test_1",
        "tests/test_a.py::test_2",
        "tests/test_b.py::test_1[x]",
        "tests/test_new.py::test_1",
        "tests/test_b.py::test_2",
        "tests/test_c.py::test_1",
    ]
    seconds = {"tests/test_a.py": 1.0, "tests/test_b.py": 30.0, "tests/test_c.py": 5.0}
    order = [node_ids[index] for index in slowest_first(node_ids, seconds)]
    assert order == [
        "tests/test_new.py::test_1",
        "tests/test_b.py::test_1[x]",
        "tests/test_b.py::test_2",
        "tests/test_c.py::test_1",
        "tests/test_a.py::test_1",
        "tests/test_a.py::test_2",
    ]


def test_the_committed_table_names_test_files_that_exist() -> None:
    tests = Path(__file__).resolve().parent
    assert load() and all((tests.parent / name).is_file() for name in load())
