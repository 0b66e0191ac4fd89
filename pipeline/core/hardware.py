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


def nvidia_gpu_present():
    """Whether an NVIDIA device file is there: what --precision auto can know without loading a backend."""
    return os.path.exists("/dev/nvidia0") or os.path.exists("/dev/nvidiactl")
