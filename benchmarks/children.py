"""Benchmarks that measure peak memory run each job in a child process of their own script:
``run(__file__, *args)`` starts ``python SCRIPT --child ARGS`` and returns the JSON object the
child prints last; ``rss_mb()`` is the process's peak resident set so far (ru_maxrss)."""

import json
import resource
import subprocess
import sys


def rss_mb() -> float:
    """Peak RSS of this process so far, MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(script: str, *args: str) -> dict:
    """``python script --child *args`` -> the JSON object on its last line of stdout."""
    out = subprocess.run([sys.executable, script, "--child", *args], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])
