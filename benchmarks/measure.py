"""Process measurements shared by the benchmark driver and the neural-tangents worker (stdlib only,
so both virtual environments can import it)."""

import resource


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far, MiB: VmHWM from /proc/self/status.

    Not ``ru_maxrss``: on Linux a child started by fork/vfork + exec inherits its parent's peak
    in ``ru_maxrss`` (a driver holding 600 MB makes every worker report >= 600 MB); VmHWM
    belongs to the process's own address space. ``ru_maxrss`` is the fallback elsewhere."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime
