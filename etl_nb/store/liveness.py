"""Whether the process behind a run is still alive: the one test for crash recovery.

A run records the process (pid and host) that runs it, and staging files
carry the same in their names. A process on this host that no longer exists
cannot finish its run nor clean up after itself, so its run is marked failed
(``fail_runs_whose_process_died``) and its staging files may be swept. A run
on another host is left alone: only that host can tell (the scheduler's
leases cover it).
"""

from __future__ import annotations

import datetime as dt
import errno
import os
import re
import socket
from functools import cache
from typing import Any

from sqlalchemy import update

from etl_nb.store.schema import runs

PROCESS_DIED = "process died"


@cache
def host_name() -> str:
    """This machine's name, as recorded on runs and in staging file names (letters, digits, '-')."""
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:40] or "host"


def process_alive(pid: int, host: str) -> bool:
    """False only when ``pid`` on ``host`` is known to be gone (this host, no such process)."""
    if host != host_name() or pid <= 0:
        return True
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return exc.errno != errno.ESRCH  # EPERM: alive, someone else's
    return _not_a_zombie(pid)


def _not_a_zombie(pid: int) -> bool:
    """A killed child its parent has not reaped yet still answers ``kill(pid, 0)``."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            return stat.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return True  # no /proc (macOS): trust kill(pid, 0)


def fail_runs_whose_process_died(conn: Any) -> int:
    """Mark failed every ``running`` run of this host whose process is gone; how many were."""
    dead = [
        row.id
        for row in conn.execute(runs.select().where(runs.c.status == "running", runs.c.host == host_name()))
        if row.pid is not None and not process_alive(row.pid, row.host)
    ]
    if dead:
        conn.execute(
            update(runs)
            .where(runs.c.id.in_(dead), runs.c.status == "running")
            .values(
                status="failed",
                finished_at=dt.datetime.now(dt.UTC),
                error=f"{PROCESS_DIED}: the process running this run stopped before it finished "
                "(killed, or the machine restarted). Run it again.",
            )
        )
    return len(dead)
