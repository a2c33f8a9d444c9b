"""Timing and memory probes of the running process: wall and CPU seconds of a call, resident and CUDA peaks."""

import ctypes
import ctypes.util
import gc
import os
import time
from typing import Callable, Optional, Sequence, Tuple

import torch

_STATUS = "/proc/self/status"
_CLEAR_REFS = "/proc/self/clear_refs"


def timed(call: Callable[[], object], device: torch.device) -> Tuple[float, float]:
    """Wall-clock and CPU seconds (all threads of this process) of `call()`, waiting for CUDA work to finish."""
    synchronize = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    synchronize()
    wall, cpu = time.perf_counter(), time.process_time()
    call()
    synchronize()
    return time.perf_counter() - wall, time.process_time() - cpu


def process_cpu_seconds(pids: Sequence[int]) -> float:
    """CPU seconds (user + system) used so far by this process and the processes `pids` (Linux /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = time.process_time()
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process has ended
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return total


def _status_mib(field: str) -> Optional[float]:
    """A memory line of /proc/self/status (e.g. VmRSS) in MiB; None where the file does not exist."""
    try:
        with open(_STATUS) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def release_free_memory() -> None:
    """Collect garbage and hand freed heap pages back to the system, so the next peak counts only new memory."""
    gc.collect()
    libc = ctypes.util.find_library("c")
    trim = getattr(ctypes.CDLL(libc), "malloc_trim", None) if libc else None
    if trim is not None:
        trim(0)


class PeakMemory:
    """Resident-set peak (Linux: VmHWM, reset through clear_refs) and CUDA peak allocation over a stretch of code.

    `added_mib` is the peak minus the resident size when the stretch began: the memory that stretch needed.
    Fields stay None where the system cannot measure them.
    """

    def __init__(self, device: torch.device):
        self.device = device
        self.start_mib: Optional[float] = None
        self.peak_mib: Optional[float] = None
        self.cuda_peak_mib: Optional[float] = None

    def __enter__(self) -> "PeakMemory":
        release_free_memory()
        self.start_mib = _status_mib("VmRSS")
        try:
            with open(_CLEAR_REFS, "w") as f:
                f.write("5")  # resets VmHWM to the current resident size
        except OSError:
            self.start_mib = None
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        return self

    def __exit__(self, *exc) -> None:
        self.peak_mib = _status_mib("VmHWM") if self.start_mib is not None else None
        if self.device.type == "cuda":
            self.cuda_peak_mib = torch.cuda.max_memory_allocated(self.device) / 2 ** 20

    @property
    def added_mib(self) -> Optional[float]:
        """Peak minus the resident size at the start, in MiB."""
        return None if self.peak_mib is None else self.peak_mib - self.start_mib


def resident_mib() -> Optional[float]:
    """Current resident size of this process in MiB (None where /proc is missing)."""
    release_free_memory()
    return _status_mib("VmRSS")


def load_average() -> Tuple[float, float, float]:
    """The system's 1, 5 and 15 minute load averages."""
    return tuple(round(x, 2) for x in os.getloadavg())


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo, or the platform's processor string."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform
    return platform.processor() or "unknown"
