"""Routing: the first acceptable hardware kind with a live worker that satisfies the test."""

import pytest

from dtf.config import worker_queue
from dtf.inventory import CpuInfo, Device, Inventory, Probe, unmet
from dtf.scheduling.routing import LiveWorker, Unroutable, choose_queue


def inventory(host: str, memory_gb: float = 32, gpus: list[Device] | None = None) -> Inventory:
    probes = {}
    if gpus is not None:
        probes["cuda"] = Probe(kind="cuda", ok=bool(gpus), devices=gpus, reason=None)
    return Inventory(host, CpuInfo(cores=8, threads=16, memory_gb=memory_gb), probes)


def h100(index: int = 0) -> Device:
    return Device(index, "NVIDIA H100 80GB HBM3", memory_gb=79.6, compute_capability=9.0)


def t4(index: int = 0) -> Device:
    return Device(index, "Tesla T4", memory_gb=15.0, compute_capability=7.5)


def worker(host: str, queues: set[str], inv: Inventory, load: float = 0.0) -> LiveWorker:
    return LiveWorker(host, frozenset(queues), inv, concurrency=1, load=load)


CPU = worker("cpu1@a", {"cpu"}, inventory("a"))
BIG_GPU = worker("gpu1@b", {"cuda", "cpu"}, inventory("b", gpus=[h100()]))
SMALL_GPU = worker("gpu2@c", {"cuda", "cpu"}, inventory("c", gpus=[t4()]))


def test_plain_cpu_work_goes_to_the_cpu_queue():
    assert choose_queue({"hardware": ["cpu"]}, [CPU]) == "cpu"


def test_the_first_acceptable_kind_with_a_live_worker_wins():
    assert choose_queue({"hardware": ["cuda", "cpu"]}, [CPU, BIG_GPU]) == "cuda"
    assert choose_queue({"hardware": ["cuda", "cpu"]}, [CPU]) == "cpu"


def test_a_queue_whose_workers_all_fit_is_used_as_is():
    assert choose_queue({"hardware": ["cuda"], "min_gpu_memory_gb": 16}, [BIG_GPU]) == "cuda"


def test_work_only_some_workers_fit_goes_to_the_own_queue_of_one_that_does():
    requirements = {"hardware": ["cuda"], "min_gpu_memory_gb": 40}
    assert choose_queue(requirements, [SMALL_GPU, BIG_GPU]) == worker_queue("gpu1@b")


def test_the_least_loaded_fitting_worker_is_chosen():
    busy = worker("gpu3@d", {"cuda"}, inventory("d", gpus=[h100()]), load=1.0)
    requirements = {"hardware": ["cuda"], "min_cuda_compute": 8.0}
    assert choose_queue(requirements, [busy, SMALL_GPU, BIG_GPU]) == worker_queue("gpu1@b")


def test_an_unhealthy_queue_does_not_count_as_served():
    drained = worker("gpu1@b", {"cpu"}, inventory("b", gpus=[h100()]))
    with pytest.raises(Unroutable, match="no live worker serves 'cuda'"):
        choose_queue({"hardware": ["cuda"]}, [drained])


def test_unroutable_work_names_the_unmet_requirement():
    with pytest.raises(Unroutable) as raised:
        choose_queue({"hardware": ["cuda"], "min_gpu_memory_gb": 40}, [SMALL_GPU])
    assert "min_gpu_memory_gb=40" in str(raised.value)
    assert "15 GB cuda memory < min_gpu_memory_gb 40" in str(raised.value)


@pytest.mark.parametrize(
    ("requirements", "reason"),
    [
        ({"min_memory_gb": 64}, "32 GB memory < min_memory_gb 64"),
        ({"gpu_count": 2}, "1 cuda device(s) < gpu_count 2"),
        ({"min_cuda_compute": 8.0}, "compute capability 7.5 < min_cuda_compute 8"),
        ({"min_gpu_memory_gb": 16}, "15 GB cuda memory < min_gpu_memory_gb 16"),
    ],
)
def test_unmet_says_what_falls_short(requirements, reason):
    assert unmet(inventory("c", gpus=[t4()]), "cuda", requirements) == reason


def test_a_kind_the_machine_lacks_is_unmet_with_the_probe_reason():
    inv = Inventory("a", CpuInfo(2, 2, 8.0), {"rocm": Probe("rocm", False, "rocm-smi not found")})
    assert unmet(inv, "rocm", {}) == "no rocm (rocm-smi not found)"
    assert unmet(inv, "cpu", {}) is None


def test_inventory_round_trips_through_json_dicts():
    inv = inventory("b", gpus=[h100(), h100(1)])
    assert Inventory.from_dict(inv.to_dict()) == inv
    assert inv.kinds() == ["cpu", "cuda"]


def test_a_queue_an_operator_forced_is_served_though_no_device_was_found():
    forced = worker("gpu9@e", {"cuda"}, inventory("e", gpus=[]))
    assert choose_queue({"hardware": ["cuda"]}, [forced]) == "cuda"
    with pytest.raises(Unroutable, match="min_gpu_memory_gb"):
        choose_queue({"hardware": ["cuda"], "min_gpu_memory_gb": 8}, [forced])
