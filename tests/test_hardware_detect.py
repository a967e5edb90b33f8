"""Detection: /proc/cpuinfo parsing, GPU names mapped to the catalog, MI250X dies per package."""

from __future__ import annotations

from mfubench.hardware.detect import (
    CpuInfo,
    Detected,
    GpuInfo,
    catalog_name,
    detect,
    parse_cpuinfo,
)

X86 = """\
processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8480+
physical id\t: 0
core id\t\t: 0
flags\t\t: fpu sse avx2 fma avx512f avx512_bf16 amx_bf16 amx_tile amx_int8 avx512_vnni

processor\t: 1
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8480+
physical id\t: 0
core id\t\t: 0
flags\t\t: fpu sse avx2 fma avx512f avx512_bf16 amx_bf16 amx_tile amx_int8 avx512_vnni

processor\t: 2
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8480+
physical id\t: 1
core id\t\t: 0
flags\t\t: fpu sse avx2 fma avx512f avx512_bf16 amx_bf16 amx_tile amx_int8 avx512_vnni
"""

ARM = """\
processor\t: 0
BogoMIPS\t: 2000.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics asimddp sve sve2 bf16 i8mm
CPU implementer\t: 0x41

processor\t: 1
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics asimddp sve sve2 bf16 i8mm
CPU implementer\t: 0x41
"""


def test_parse_x86_cpuinfo_counts_physical_cores_and_sockets() -> None:
    model, vendor, sockets, cores, logical, flags = parse_cpuinfo(X86)
    assert model == "Intel(R) Xeon(R) Platinum 8480+"
    assert vendor == "GenuineIntel"
    assert (sockets, cores, logical) == (2, 2, 3)  # two hyperthreads share core 0 of socket 0
    assert flags == ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile",
                     "amx_bf16", "amx_int8")


def test_parse_arm_cpuinfo() -> None:
    model, vendor, sockets, cores, logical, flags = parse_cpuinfo(ARM)
    assert vendor == "Arm implementer 0x41"
    assert (sockets, cores, logical) == (1, 2, 2)  # no topology: one core per logical CPU
    assert {"asimd", "sve", "sve2", "bf16", "i8mm"} <= set(flags)


def test_gpu_names_map_to_the_catalog() -> None:
    assert catalog_name("NVIDIA H100 80GB HBM3") == "H100-SXM"
    assert catalog_name("NVIDIA A100-SXM4-40GB") == "A100-SXM-40GB"
    assert catalog_name("NVIDIA GeForce RTX 4090") == "RTX-4090"
    assert catalog_name("AMD Instinct MI300X") == "MI300X"
    assert catalog_name("NVIDIA L40S") == "L40S"
    assert catalog_name("NVIDIA GeForce GTX 1080") is None


def _gpu(index: int, name: str) -> GpuInfo:
    return GpuInfo(index, "NVIDIA", name, catalog_name(name), 80e9, 1980.0, 1980.0, 2619.0)


CPU = CpuInfo("test CPU", "GenuineIntel", 1, 2, 2, 2, (), 1e9)


def test_hardware_text_counts_devices() -> None:
    h100s = tuple(_gpu(i, "NVIDIA H100 80GB HBM3") for i in range(8))
    assert Detected(CPU, h100s).hardware_text() == "8xH100-SXM"
    assert Detected(CPU, ()).hardware_text() == "cpu"
    unknown = (_gpu(0, "NVIDIA GeForce GTX 1080"),)
    assert Detected(CPU, unknown).hardware_text() == "cpu"


def test_mi250x_gcds_are_counted_per_package() -> None:
    gcds = tuple(GpuInfo(i, "AMD", "AMD Instinct MI250X", "MI250X", 64e9, None, None, None)
                 for i in range(8))
    assert Detected(CPU, gcds).catalog_counts() == {"MI250X": 4}
    assert Detected(CPU, gcds).hardware_text() == "4xMI250X"


def test_detect_on_this_machine_always_finds_the_cpu() -> None:
    found = detect()
    assert found.cpu.model
    assert found.cpu.logical_cpus >= found.cpu.usable_cpus >= 1
    assert found.cpu.cores >= 1 and found.cpu.memory_total > 0
    for gpu in found.gpus:
        assert gpu.memory_total >= 0
