"""What this machine has, read without loading a backend (core/devices.py asks the backend itself)."""
import os


def cpu_flags():
    """The CPU's feature flags (/proc/cpuinfo's first "flags" line; empty where there is none)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("flags"):
                    return set(line.partition(":")[2].split())
    except OSError:
        pass
    return set()


# oneDNN's instruction-set caps (ONEDNN_MAX_CPU_ISA, which makes it run as on an older CPU) that
# still leave it the bfloat16 instructions; with a lower cap (AVX2, AVX512_CORE, ...) it has none.
BFLOAT16_ISA_CAPS = ("AVX512_CORE_BF16", "AVX512_CORE_FP16", "AVX512_CORE_AMX", "AVX10", "DEFAULT", "ALL")


def has_bfloat16_units(flags=None):
    """Whether the CPU has bfloat16 units (AVX512_BF16 or AMX; `flags` default: this CPU's) and
    oneDNN may use them."""
    flags = cpu_flags() if flags is None else set(flags)
    cap = (os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "DEFAULT").upper()
    return bool({"avx512_bf16", "amx_bf16"} & flags) and cap.startswith(BFLOAT16_ISA_CAPS)


def nvidia_gpu_present():
    """Whether an NVIDIA device file is there: what --precision auto can know without loading a backend."""
    return os.path.exists("/dev/nvidia0") or os.path.exists("/dev/nvidiactl")
