"""The status a run ends with, from what its tests and batches stored."""

from dtf.summary import RunSummary


def summary(total: int, finished: int, **counts: int) -> RunSummary:
    return RunSummary(run_id="r", status="running", total=total, finished=finished, counts=counts)


def test_every_test_passed_is_passed():
    assert summary(3, 3, passed=3).verdict() == "passed"


def test_a_failure_makes_it_failed():
    assert summary(3, 3, passed=2, failed=1).verdict() == "failed"


def test_a_test_that_never_got_a_result_makes_it_an_error_not_a_pass():
    assert summary(3, 2, passed=2).verdict() == "error"


def test_an_infrastructure_error_beats_a_test_failure():
    assert summary(2, 2, failed=1, infra_error=1).verdict() == "error"


def test_a_broken_batch_makes_it_an_error():
    broken = summary(1, 1, passed=1)
    broken.broken.append("batch b on queue cpu: worker lost")
    assert broken.verdict() == "error"


def test_a_crashed_tests_summary_line_says_how_the_child_ended():
    from dtf.summary import failure_line

    crashed = (
        "pytest child was killed by SIGSEGV (exit code -11) while this test was running\n"
        "--- stderr (tail) ---\nFatal Python error: Segmentation fault\n"
    )
    assert failure_line("crashed", crashed).startswith("pytest child was killed by SIGSEGV")
    assert failure_line("crashed", "pytest child exited\n--- stderr (tail) ---\n") == (
        "pytest child exited"
    )
    assert failure_line("failed", "def test():\n>  assert 1 == 2\nE  assert 1 == 2") == (
        "E  assert 1 == 2"
    )
    assert failure_line("crashed", None) == ""
