"""Executors: where a sweep's networks run, behind one interface.

``submit(job) -> key`` starts a network; ``wait(timeout)`` returns the ``Outcome`` of each that ended
(``ok`` with its result, or not with one error line); ``slots`` is how many may run at once (the driver
submits no more); ``close()`` lets go. ``LocalExecutor`` keeps as many worker processes as asked (default:
the cores), each running one network at a time, torch single-threaded; a worker that dies (killed, crashed)
is a failed attempt of exactly its network, and is replaced. ``RayExecutor`` hands every network to a Ray
cluster as one task of one CPU and lets Ray place them; a killed worker is a failed attempt, retried by the
driver like any other.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from multiprocessing.connection import wait as wait_any

from ..errors import RunError
from .worker import error_line, run_network


@dataclass
class Outcome:
    key: int
    ok: bool
    result: dict | None = None
    error: str = ""


def _die_with_parent() -> None:
    """Linux: the kernel kills this process when the driver dies (even by SIGKILL), so a restarted driver never
    finds a network's folder still held by an orphan of the last one."""
    try:
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask where the OS tells it, else the machine's count)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:
        return os.cpu_count() or 1


def _serve(conn) -> None:
    """A worker process: run the networks it is sent, one at a time, until told to stop (None) or orphaned."""
    _die_with_parent()
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        try:
            message = ("ok", run_network(job))
        except BaseException as e:  # noqa: BLE001 - everything goes back to the driver as one line
            message = ("error", error_line(e))
        conn.send(message)


class LocalExecutor:
    """Networks in local worker processes (``spawn``: fresh interpreters, nothing inherited from the driver), at
    most ``processes`` at once, each running one network at a time and kept for the next (a network's results do
    not depend on what ran before it in the process: the tests compare them with fresh runs). A worker that dies
    fails exactly the network it was running, and is replaced."""

    name = "local"

    def __init__(self, processes: int = 0):
        self.slots = processes if processes > 0 else usable_cores()
        self._ctx = mp.get_context("spawn")
        self._workers: list[list] = []  # [process, connection, key of the network it runs or None]
        self._next = 0

    def submit(self, job: dict) -> int:
        worker = next((w for w in self._workers if w[2] is None and w[0].is_alive()), None)
        if worker is None:
            if len([w for w in self._workers if w[0].is_alive()]) >= self.slots:
                raise RuntimeError("LocalExecutor.submit: every worker is busy (submit at most `slots` at once)")
            mine, theirs = self._ctx.Pipe(duplex=True)
            proc = self._ctx.Process(target=_serve, args=(theirs,), daemon=True, name="ratespike-sweep-worker")
            proc.start()
            theirs.close()
            worker = [proc, mine, None]
            self._workers.append(worker)
        key, self._next = self._next, self._next + 1
        worker[1].send(job)
        worker[2] = key
        return key

    def wait(self, timeout: float | None = None) -> list[Outcome]:
        busy = [w for w in self._workers if w[2] is not None]
        if not busy:
            return []
        handles = {}
        for w in busy:
            handles[w[1]] = w
            handles[w[0].sentinel] = w
        ready = wait_any(list(handles), timeout)
        done = []
        for w in {id(handles[h]): handles[h] for h in ready}.values():
            proc, conn, key = w
            message = None
            try:
                if conn.poll():
                    message = conn.recv()
            except (EOFError, OSError):
                message = None
            if message is None and proc.is_alive():
                continue  # woke on nothing final; look again
            w[2] = None
            if message is None:
                proc.join(timeout=30)
                conn.close()
                self._workers.remove(w)
                done.append(Outcome(key, False, error=f"worker process died (exit code {proc.exitcode})"))
            elif message[0] == "ok":
                done.append(Outcome(key, True, message[1]))
            else:
                done.append(Outcome(key, False, error=message[1]))
        return sorted(done, key=lambda o: o.key)

    @property
    def pids(self) -> list[int]:
        """Process ids of the workers running a network now."""
        return [w[0].pid for w in self._workers if w[2] is not None]

    def close(self) -> None:
        for proc, conn, key in self._workers:
            try:
                if key is None and proc.is_alive():
                    conn.send(None)  # idle: stop after nothing
                else:
                    proc.terminate()  # busy: only the processes this executor started
            except OSError:
                pass
        for proc, conn, _ in self._workers:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5)
            conn.close()
        self._workers.clear()


class InlineExecutor:
    """Networks one after another in this process (the benchmark's baseline, and quick tests). Each runs with
    one torch thread, like a worker; the process's thread count is restored after it."""

    name = "inline"
    slots = 1

    def __init__(self):
        self._done: list[Outcome] = []
        self._next = 0

    def submit(self, job: dict) -> int:
        import torch

        key, self._next = self._next, self._next + 1
        threads = torch.get_num_threads()
        try:
            self._done.append(Outcome(key, True, run_network(job)))
        except Exception as e:  # noqa: BLE001 - recorded like a worker's failure
            self._done.append(Outcome(key, False, error=error_line(e)))
        finally:
            torch.set_num_threads(threads)
        return key

    def wait(self, timeout: float | None = None) -> list[Outcome]:
        done, self._done = self._done, []
        return done

    def close(self) -> None:
        self._done.clear()


def _check_reachable(address: str, timeout_s: float) -> None:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise RunError(f"--ray-address must be auto or HOST:PORT, got {address!r}")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            pass
    except OSError as e:
        raise RunError(f"cannot reach a Ray cluster at {address} ({e.strerror or e}); start one with "
                       f"`ray start --head` or give its address") from None


_PROBE = """
import sys
import ray
ray.init(address=sys.argv[1], log_to_driver=False, include_dashboard=False, configure_logging=False)
ray.shutdown()
"""


def _probe(address: str, timeout_s: float) -> None:
    """Connect once from a child process, so a cluster that does not answer costs ``timeout_s`` and one line (Ray's
    own connection messages and retries stay in the child, which is ended at the timeout)."""
    try:
        r = subprocess.run([sys.executable, "-c", _PROBE, address], capture_output=True, text=True,
                           timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise RunError(f"no Ray cluster answered at {address} within {timeout_s:g} s") from None
    if r.returncode != 0:
        lines = [x.strip() for x in r.stderr.splitlines() if x.strip()]
        errors = [x for x in lines if "Error" in x] or lines or [f"exit code {r.returncode}"]
        raise RunError(f"cannot connect to a Ray cluster at {address}: {errors[-1][:300]}")


def _ray_error_line(e: BaseException) -> str:
    import ray.exceptions as rex

    cause = getattr(e, "cause", None)
    if isinstance(e, rex.RayTaskError) and cause is not None:
        return error_line(cause)
    if isinstance(e, (rex.WorkerCrashedError, rex.NodeDiedError)) or "died" in str(e).lower():
        return f"{type(e).__name__}: the Ray worker running this network died"
    return error_line(e)


class RayExecutor:
    """Networks as Ray tasks (one CPU each) on the cluster at ``address`` (``auto`` or ``HOST:PORT``). The
    sweep folder must be on a file system every node sees (one machine, or a shared mount)."""

    name = "ray"

    def __init__(self, address: str, timeout_s: float = 30.0):
        try:
            import ray
        except ImportError:
            raise RunError("the Ray executor needs the cluster extra: pip install 'ratespike[cluster]'") from None
        self._ray = ray
        if address != "auto":
            _check_reachable(address, min(timeout_s, 10.0))
        _probe(address, timeout_s)
        ray.init(address=address, ignore_reinit_error=True, log_to_driver=False, include_dashboard=False,
                 configure_logging=False)
        self._remote = ray.remote(num_cpus=1, max_retries=0)(run_network)
        self.slots = 1_000_000  # Ray queues and places every task; the driver holds none back
        self._refs: dict = {}
        self._next = 0

    def submit(self, job: dict) -> int:
        ref = self._remote.remote(job)
        key, self._next = self._next, self._next + 1
        self._refs[ref] = key
        return key

    def wait(self, timeout: float | None = None) -> list[Outcome]:
        if not self._refs:
            return []
        ready, _ = self._ray.wait(list(self._refs), num_returns=1, timeout=timeout)
        done = []
        for ref in ready:
            key = self._refs.pop(ref)
            try:
                done.append(Outcome(key, True, self._ray.get(ref)))
            except Exception as e:  # noqa: BLE001 - task errors and dead workers alike
                done.append(Outcome(key, False, error=_ray_error_line(e)))
        return done

    def close(self) -> None:
        for ref in self._refs:
            self._ray.cancel(ref, force=True)
        self._refs.clear()
        self._ray.shutdown()


def make_executor(ray_address: str | None = None, processes: int = 0, timeout_s: float = 30.0):
    if ray_address:
        return RayExecutor(ray_address, timeout_s)
    return LocalExecutor(processes)
