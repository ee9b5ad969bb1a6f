"""The CPU facts quantization depends on: VNNI decides `reduce_range` (ORT's x86 guidance)."""

import platform
from dataclasses import dataclass
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")
VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")


@dataclass(frozen=True)
class CpuProfile:
    model_name: str
    vnni: bool
    flags: tuple[str, ...]  # the VNNI-family flags found


def read_cpu_profile(cpuinfo: Path = CPUINFO) -> CpuProfile:
    """Parse /proc/cpuinfo (first processor); on other systems report an unknown CPU without VNNI."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return CpuProfile(platform.processor() or "unknown", False, ())
    model_name, flags = "unknown", set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and model_name == "unknown":
            model_name = value.strip()
        elif key == "flags" and not flags:
            flags = set(value.split())
    found = tuple(f for f in VNNI_FLAGS if f in flags)
    return CpuProfile(model_name, bool(found), found)


def choose_reduce_range(configured: bool | None, cpu: CpuProfile) -> tuple[bool, str]:
    """`reduce_range` to use and why. Without VNNI, AVX2's u8s8 multiply saturates: use 7-bit weights."""
    if configured is not None:
        return configured, "set in the model's config"
    if cpu.vnni:
        return False, f"CPU has {', '.join(cpu.flags)}: full 8-bit range is exact"
    return True, "CPU has no VNNI: AVX2 u8s8 multiply can saturate, so weights use 7 bits"
