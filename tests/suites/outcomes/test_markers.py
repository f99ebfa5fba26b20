"""dtf requirements on several levels: the closest marker wins, the rest is merged."""

import pytest

pytestmark = pytest.mark.dtf(hardware="cpu", suite="markers")


@pytest.mark.dtf(hardware="cuda", vram_gb=8)
class TestGpu:
    @pytest.mark.dtf(vram_gb=16)
    def test_closest_wins(self):
        pass


def test_module_level_only():
    pass
