"""dtf requirements on several levels: the closest marker wins, the rest is merged."""

import pytest

pytestmark = pytest.mark.dtf(hardware="cpu", min_memory_gb=1)


@pytest.mark.dtf(hardware=["cpu"], timeout=60)
class TestGpu:
    @pytest.mark.dtf(min_memory_gb=2)
    def test_closest_wins(self):
        pass


def test_module_level_only():
    pass
