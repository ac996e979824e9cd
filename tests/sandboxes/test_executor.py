"""Executors: local threads bounded by max_workers, and Ray actor tasks on a local Ray instance."""

from __future__ import annotations

import asyncio
import json
import shutil

import pytest

from sandboxes import EndReason, Job, Limits, LocalExecutor, RayExecutor, SandboxError, make_sandbox

STAMP = ("import json, time; s = time.time(); time.sleep(0.5); "
         "json.dump([s, time.time()], open('t.json', 'w'))")


def _stamp_job() -> Job:
    return Job(("python3", "-c", STAMP), collect=("t.json",), limits=Limits(wall_seconds=20))


def _intervals(results) -> list[list[float]]:
    return sorted(json.loads(r.files["t.json"]) for r in results)


def _overlap(a: list[float], b: list[float]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


@pytest.mark.parametrize("workers", [1, 2])
def test_local_executor_runs_at_most_max_workers_at_once(workers: int) -> None:
    async def main():
        with LocalExecutor(make_sandbox("process"), max_workers=workers) as executor:
            return await asyncio.gather(*(executor.run(_stamp_job()) for _ in range(2)))

    first, second = _intervals(asyncio.run(main()))
    assert _overlap(first, second) == (workers == 2)


def test_local_executor_rejects_zero_workers() -> None:
    with pytest.raises(SandboxError, match="at least 1"):
        LocalExecutor(make_sandbox("process"), max_workers=0)


@pytest.mark.slow
def test_ray_executor_fans_jobs_out_over_sandbox_hosts() -> None:
    ray = pytest.importorskip("ray", reason="needs the 'ray' extra: pip install 'cladeforge[ray]'")
    kind = "bwrap" if shutil.which("bwrap") else "process"
    executor = RayExecutor(kind, workers=2, ray_init={"num_cpus": 2})

    async def main():
        jobs = [Job(("python3", "-c", f"print({i} * {i})")) for i in range(4)]
        jobs.append(Job(("python3", "-c", "while True: pass"), limits=Limits(wall_seconds=1)))
        results = await asyncio.gather(*(executor.run(job) for job in jobs))
        return results + await asyncio.gather(executor.run(_stamp_job()),
                                              executor.run(_stamp_job()))

    try:
        assert len(executor.start().nodes()) == 2
        results = asyncio.run(main())
    finally:
        executor.close()
    assert [r.stdout for r in results[:4]] == [b"0\n", b"1\n", b"4\n", b"9\n"]
    assert all(r.reason is EndReason.OK for r in results[:4])
    assert results[4].reason is EndReason.TIMEOUT
    first, second = _intervals(results[5:])
    assert _overlap(first, second)  # two hosts: two jobs at once
    assert not ray.is_initialized()  # the executor started Ray, so it stopped it


def test_ray_executor_reports_a_sandbox_that_cannot_start() -> None:
    pytest.importorskip("ray", reason="needs the 'ray' extra: pip install 'cladeforge[ray]'")
    executor = RayExecutor("process", {"no_such_option": 1}, workers=1,
                           ray_init={"num_cpus": 1})
    with pytest.raises(SandboxError, match="could not start"):
        executor.start()
    import ray
    assert not ray.is_initialized()


def test_local_executor_serves_one_event_loop_after_another() -> None:
    executor = LocalExecutor(make_sandbox("process"), max_workers=1)

    async def two():
        return await asyncio.gather(*(executor.run(Job(("python3", "-c", "pass")))
                                      for _ in range(2)))

    with executor:
        for _ in range(2):  # a fresh asyncio.run each time, with jobs waiting for the slot
            assert all(r.ok for r in asyncio.run(two()))
