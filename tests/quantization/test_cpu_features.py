"""reduce_range follows the CPU's VNNI flag unless the config sets it, and the reason is recorded."""

from pathlib import Path

from server.quantization.cpu_features import choose_reduce_range, read_cpu_profile

CPUINFO = """processor\t: 0
model name\t: Example CPU @ 2.00GHz
flags\t\t: fpu sse2 avx2 {extra}

processor\t: 1
model name\t: Example CPU @ 2.00GHz
flags\t\t: fpu sse2 avx2 {extra}
"""


def _profile(tmp_path: Path, extra: str):
    path = tmp_path / "cpuinfo"
    path.write_text(CPUINFO.format(extra=extra))
    return read_cpu_profile(path)


def test_vnni_cpu_uses_the_full_range(tmp_path: Path) -> None:
    cpu = _profile(tmp_path, "avx512f avx512_vnni")
    assert cpu.vnni and cpu.flags == ("avx512_vnni",) and cpu.model_name == "Example CPU @ 2.00GHz"
    reduce_range, why = choose_reduce_range(None, cpu)
    assert reduce_range is False and "avx512_vnni" in why


def test_cpu_without_vnni_reduces_the_range(tmp_path: Path) -> None:
    cpu = _profile(tmp_path, "avx512f")
    reduce_range, why = choose_reduce_range(None, cpu)
    assert reduce_range is True and "no VNNI" in why


def test_config_overrides_the_cpu(tmp_path: Path) -> None:
    cpu = _profile(tmp_path, "avx_vnni")
    assert choose_reduce_range(True, cpu) == (True, "set in the model's config")


def test_unreadable_cpuinfo_means_no_vnni(tmp_path: Path) -> None:
    cpu = read_cpu_profile(tmp_path / "missing")
    assert not cpu.vnni and choose_reduce_range(None, cpu)[0] is True
