"""Communication of layouts over NVLink and the network, the system layout of the catalog, and
the entries added for deployments at scale."""

from __future__ import annotations

from dataclasses import replace

import pytest

from mfubench.analysis.comm import Fabric, comm_advice, comm_terms, fabric_of
from mfubench.analysis.phases import decode_work, make_setup, phase_roofline, prefill_work
from mfubench.analysis.roofline import Machine, allreduce_s
from mfubench.counting.layout import Layout
from mfubench.errors import MfubenchError
from mfubench.hardware.catalog import load_catalog, lookup
from mfubench.hardware.spec import HardwareSpec, parse_hardware
from mfubench.model.registry import load_model

DEEPSEEK = "deepseek-ai/DeepSeek-V3"


def setup(hardware: str | HardwareSpec, layout: Layout, model: str = DEEPSEEK):  # type: ignore[no-untyped-def]
    hw = parse_hardware(hardware, attach_calibration=False) if isinstance(hardware, str) else hardware
    return make_setup(load_model(model), hw, layout=layout)


def test_tp_allreduce_term_is_the_roofline_allreduce() -> None:
    """Within the NVLink domain the layout's TP all-reduce is the plain TP roofline's."""
    spec = load_model(DEEPSEEK)
    fabric = Fabric(450e9, 5e-6, 8, 50e9)
    (name, seconds), = comm_terms(spec, Layout(tp=8), fabric, 64, 64, 3)
    machine = Machine("8xH100-SXM", 8, 1e15, 3.35e12, 80e9, 450e9, "bf16", "datasheet")
    assert name == "tp_allreduce (nvlink)"
    assert seconds == pytest.approx(allreduce_s(machine, 2 * spec.num_layers * 3, 64 * spec.hidden_size * 2))


def test_groups_beyond_the_domain_use_the_network() -> None:
    two_nodes = setup("16xH200-SXM", Layout(dp=16, ep=16, tp=1))
    nvl72 = setup("16xGB200", Layout(dp=16, ep=16, tp=1))
    assert fabric_of(two_nodes).domain == 8 and fabric_of(nvl72).domain == 72
    a, b = decode_work(two_nodes, 1024, 2000, 1), decode_work(nvl72, 1024, 2000, 1)
    (na, ta), = a.comm_terms
    (nb, tb), = b.comm_terms
    assert na == "ep_alltoall (network)" and nb == "ep_alltoall (nvlink)"
    # same bytes per GPU; 50 GB/s of network against 900 GB/s of NVLink 5 (less the latency)
    assert (ta - 2 * 58 * 10e-6) / (tb - 2 * 58 * 5e-6) == pytest.approx(900 / 50, rel=1e-9)
    rl = phase_roofline(two_nodes, a)
    assert rl is not None and rl.bound == "communication"
    advice = comm_advice(rl.comm_breakdown, two_nodes.parallel, fabric_of(two_nodes))
    assert "ep_alltoall over the network" in advice and "NVLink domain of 8" in advice


def test_gpus_per_node_shrinks_an_hgx_domain_but_not_nvl72() -> None:
    hw = replace(parse_hardware("8xH100-SXM", attach_calibration=False), gpus_per_node=4)
    assert hw.system is not None and hw.system.scaleup_domain == 4
    s = setup(hw, Layout(tp=8, dp=1, imbalance=1.5))  # imbalance forces the layout path
    terms = dict(decode_work(s, 32, 1000, 1).comm_terms)
    assert "tp_allreduce (network)" in terms
    nvl = replace(parse_hardware("72xGB200", attach_calibration=False), gpus_per_node=2)
    assert nvl.system is not None and nvl.system.scaleup_domain == 72


def test_ep_alltoall_bytes_and_dp_gather() -> None:
    spec = load_model("Qwen/Qwen3-30B-A3B")  # 48 MoE layers, top-8, hidden 2048
    fabric = Fabric(1.0, 0.0, 64, None)  # 1 B/s, no latency: seconds are bytes
    terms = dict(comm_terms(spec, Layout(tp=1, dp=8, ep=8), fabric, 16, 128, 1))
    sent = 8 * 128 / 8 * 2048 * 2 * 7 / 8  # k T/(tp dp) tokens' copies, 7/8 leave the GPU
    assert terms["ep_alltoall (nvlink)"] == pytest.approx(2 * 48 * sent)
    skew = dict(comm_terms(spec, Layout(tp=1, dp=8, ep=8, imbalance=2.0), fabric, 16, 128, 1))
    assert skew["ep_alltoall (nvlink)"] == pytest.approx(2 * terms["ep_alltoall (nvlink)"])
    gather = dict(comm_terms(spec, Layout(tp=1, dp=8), fabric, 16, 128, 1))
    assert gather["dp_gather (nvlink)"] == pytest.approx(2 * 48 * 7 / 8 * 128 * 2048 * 2)
    pp = dict(comm_terms(spec, Layout(tp=2, pp=4), fabric, 16, 16, 3))
    assert pp["pp_sendrecv (nvlink)"] == pytest.approx(3 * 3 * 16 * 2048 * 2)
    with pytest.raises(MfubenchError, match="no scale-out network"):
        comm_terms(spec, Layout(tp=1, dp=128, ep=128), fabric, 1, 128, 1)


def test_prefill_under_a_layout_carries_its_terms() -> None:
    s = setup("16xH200-SXM", Layout(tp=8, dp=2, ep=16))
    w = prefill_work(s, 4, 1024)
    names = {n for n, _ in w.comm_terms}
    assert names == {"tp_allreduce (nvlink)", "ep_alltoall (network)"}
    both = w + w
    assert dict(both.comm_terms)["tp_allreduce (nvlink)"] == 2 * dict(w.comm_terms)["tp_allreduce (nvlink)"]


def test_new_catalog_entries_and_systems() -> None:
    cat = load_catalog()
    gb300 = lookup("GB300 NVL72")
    assert gb300.peak("fp4") == 15000e12 and gb300.peak("bf16") == 2500e12
    assert gb300.system is not None and gb300.system.scaleup_domain == 72
    assert lookup("H20").peak("fp8") == 296e12 and lookup("H20").memory_bandwidth == 4.0e12
    assert lookup("Ironwood").peak("fp8") == 4614e12 and lookup("TPU7x").peak("bf16") == 2307e12
    assert lookup("Trn2").peak("bf16") == 667e12
    for name in ("H100-SXM", "H200-SXM", "B200", "B300", "GB200", "GB300", "H20"):
        sys = cat[name].system
        assert sys is not None and sys.source and sys.checked == "2026-12-01"
        assert sys.scaleup_domain in (8, 72)
    assert parse_hardware("64xB200", attach_calibration=False).system.gpus_per_node == 8  # type: ignore[union-attr]
