from dtf.reporting.junit import _names


def test_names_are_mangled_like_pytest_junitxml():
    assert _names("tests/test_a.py::test_x") == ("tests.test_a", "test_x")
    assert _names("tests/test_a.py::TestC::test_x[1-2]") == ("tests.test_a.TestC", "test_x[1-2]")


def test_a_parameter_id_may_hold_double_colons():
    assert _names("t.py::test_odd[colon::x]") == ("t", "test_odd[colon::x]")


def test_a_collection_error_has_no_class():
    assert _names("tests/test_bad.py") == ("", "tests.test_bad")
