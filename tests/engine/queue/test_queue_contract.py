"""The JobQueue contract, run against each backend (SQLite and PostgreSQL; see conftest.py)."""

from __future__ import annotations

import dataclasses
import multiprocessing as mp
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from benchmarks.harness import free_port
from engine.queue import JobNotFound, JobParams, JobQueue, LeaseLost, Progress, QueueError, QueueUnavailable, open_queue

PARAMS = JobParams(model="tiny", prompt="a cat", height=64, width=64, frames=2, steps=2)
LATER = timedelta(minutes=5)


def open_url(url: str) -> JobQueue:
    return open_queue(SimpleNamespace(queue_url=url))


def submit(queue: JobQueue, job_id: str, priority: int = 0) -> None:
    queue.submit(PARAMS, f"/in/{job_id}.png", job_id=job_id, priority=priority, predicted={"seconds": 1.5})


def claim_all(queue: JobQueue) -> list[str]:
    order = []
    while (job := queue.claim("w", None, 30)) is not None:
        order.append(job.id)
    return order


def soon() -> datetime:
    return datetime.now(timezone.utc) + LATER


def test_submit_claim_heartbeat_finish(queue):
    submitted = queue.submit(PARAMS, "/in/a.png", job_id="a", predicted={"seconds": 1.5})
    assert (submitted.state, submitted.attempts, submitted.params, submitted.predicted) == ("queued", 0, PARAMS, {"seconds": 1.5})
    assert submitted.created_at.tzinfo is not None

    job = queue.claim("w1", 0, 30)
    assert (job.id, job.state, job.worker_id, job.gpu_index, job.attempts) == ("a", "running", "w1", 0, 1)
    assert job.lease_expires_at > job.started_at
    assert queue.claim("w2", 1, 30) is None

    beat = queue.heartbeat("a", "w1", 30, Progress(stage="denoising_loop", step=1, total_steps=2, eta_s=3.0, elapsed_s=1.0))
    assert (beat.cancel_requested, beat.cancel_reason) == (False, None)
    running = queue.get("a")
    assert (running.progress.stage, running.progress.step, running.progress.total_steps, running.progress.eta_s) == ("denoising_loop", 1, 2, 3.0)
    queue.heartbeat("a", "w1", 30)  # lease only

    done = queue.finish("a", "w1", "succeeded", result={"stages": {"model_load": 0.5}, "video_path": "/v.mp4"})
    assert (done.state, done.result["video_path"], done.lease_expires_at) == ("succeeded", "/v.mp4", None)
    assert done.finished_at >= done.started_at
    assert [e["state"] for e in queue.events("a")] == ["queued", "running", "succeeded"]
    assert queue.counts() == {"queued": 0, "running": 0, "succeeded": 1, "failed": 0, "cancelled": 0}


def test_a_succeeded_jobs_progress_is_final_whatever_its_last_heartbeat_said(queue):
    submit(queue, "a")
    queue.claim("w1", 0, 30)
    queue.heartbeat("a", "w1", 30, Progress(stage="denoising_loop", step=1, total_steps=2, eta_s=0.4, elapsed_s=1e-3,
                                            eta_margin_s=0.1))
    done = queue.finish("a", "w1", "succeeded", result={"stages": {"model_load": 0.5}})
    p = done.progress
    assert (p.stage, p.step, p.total_steps, p.eta_s, p.eta_margin_s) == ("done", 2, 2, 0.0, 0.0)
    assert p.elapsed_s >= 1e-3  # the wall time from start to end, never less than the last published figure
    assert queue.get("a").progress == p


def test_a_cancelled_or_failed_job_keeps_where_it_stopped_with_no_eta(queue):
    for job_id, state in (("c", "cancelled"), ("f", "failed")):
        submit(queue, job_id)
        queue.claim("w1", 0, 30)
        queue.heartbeat(job_id, "w1", 30, Progress(stage="decode_video", step=2, total_steps=2, eta_s=3.0,
                                                   elapsed_s=4.7, eta_margin_s=1.0))
        p = queue.finish(job_id, "w1", state).progress
        assert (p.stage, p.step, p.eta_s, p.eta_margin_s) == ("decode_video", 2, None, None)
        assert p.elapsed_s >= 4.7  # elapsed never goes backwards at the end


def test_the_eta_margin_is_published_with_the_eta(queue):
    submit(queue, "a")
    queue.claim("w1", 0, 30)
    queue.heartbeat("a", "w1", 30, Progress(stage="denoising_loop", step=1, total_steps=2, eta_s=240.0, eta_margin_s=20.0))
    assert (queue.get("a").progress.eta_s, queue.get("a").progress.eta_margin_s) == (240.0, 20.0)


def test_heartbeat_publishes_the_seconds_of_each_stage_done_so_far(queue):
    submit(queue, "a")
    queue.claim("w1", 0, 30)
    stages = {"model_load": 7.5, "text_encoding": 0.25}
    queue.heartbeat("a", "w1", 30, Progress(stage="denoising_loop", step=3, total_steps=50, stages=stages))
    assert queue.get("a").progress.stages == stages
    queue.requeue("a", "w1", "worker stopping")
    assert queue.claim("w2", 0, 30).progress.stages == {}  # a new attempt starts from nothing


def test_a_worker_leaves_a_job_predicted_too_large_for_its_gpu_to_a_larger_one(queue):
    gib = 2**30
    queue.submit(PARAMS, "/in/big.png", job_id="big", predicted={"peak_reserved_bytes": 60 * gib})
    queue.submit(PARAMS, "/in/small.png", job_id="small", predicted={"peak_reserved_bytes": 10 * gib})
    assert queue.claim("w24", 1, 30, max_reserved_bytes=23 * gib).id == "small"
    assert queue.claim("w24", 1, 30, max_reserved_bytes=23 * gib) is None
    assert queue.claim("w80", 0, 30, max_reserved_bytes=79 * gib).id == "big"


def test_a_forced_or_unpredicted_job_is_taken_by_any_worker(queue):
    queue.submit(PARAMS, "/in/f.png", job_id="forced", predicted={"peak_reserved_bytes": 2**40, "forced": True})
    queue.submit(PARAMS, "/in/u.png", job_id="unpredicted", predicted={"peak_reserved_bytes": None, "seconds": 3.0})
    assert [queue.claim("w", 0, 30, max_reserved_bytes=2**30).id for _ in range(2)] == ["forced", "unpredicted"]


def test_the_queue_counts_the_jobs_no_worker_of_a_gpu_size_would_take(queue):
    gib = 2**30
    queue.submit(PARAMS, "/in/big.png", job_id="big", predicted={"peak_reserved_bytes": 60 * gib})
    queue.submit(PARAMS, "/in/small.png", job_id="small", predicted={"peak_reserved_bytes": 10 * gib})
    queue.submit(PARAMS, "/in/f.png", job_id="forced", predicted={"peak_reserved_bytes": 90 * gib, "forced": True})
    queue.submit(PARAMS, "/in/u.png", job_id="unpredicted", predicted={"peak_reserved_bytes": None})
    assert queue.queued_larger_than(23 * gib) == 1
    assert queue.queued_larger_than(5 * gib) == 2
    assert queue.queued_larger_than(79 * gib) == 0
    queue.claim("w80", 0, 30, max_reserved_bytes=79 * gib)  # the big one (first in line) runs: no longer waiting
    assert queue.queued_larger_than(5 * gib) == 1


def test_claim_order_follows_priority_then_position(queue):
    for job_id in ("a", "b", "c", "d"):
        submit(queue, job_id)
    queue.set_priority("c", 5)
    queue.move("d", to="top")  # top of its priority (0): before a
    queue.move("a", before="b")  # already before b: stays
    queue.move("b", to="bottom")
    assert [j.id for j in queue.list(("queued",))] == ["c", "d", "a", "b"]
    assert claim_all(queue) == ["c", "d", "a", "b"]


def test_move_before_takes_the_anchor_priority(queue):
    for job_id in ("a", "b", "c"):
        submit(queue, job_id)
    queue.set_priority("b", 3)
    moved = queue.move("c", before="b")
    assert moved.priority == 3
    assert claim_all(queue) == ["c", "b", "a"]


def test_move_needs_a_target_and_a_queued_job(queue):
    submit(queue, "a")
    with pytest.raises(QueueError, match="move needs"):
        queue.move("a")
    queue.claim("w", None, 30)
    with pytest.raises(QueueError, match="only queued jobs"):
        queue.move("a", to="top")
    with pytest.raises(QueueError, match="only queued jobs"):
        queue.set_priority("a", 9)


def test_list_shows_running_then_queued_then_finished(queue):
    for job_id in ("a", "b", "c", "d"):
        submit(queue, job_id)
    first = queue.claim("w", None, 30)
    queue.finish(first.id, "w", "failed", error_kind="oom", error_message="out of memory")
    queue.claim("w", None, 30)
    assert [j.id for j in queue.list()] == ["b", "c", "d", "a"]
    assert [j.id for j in queue.list(("failed",))] == ["a"]
    assert len(queue.list(limit=2)) == 2


def test_list_pages_through_every_job_with_offset(queue):
    """Issue 26: pages of `limit` from `offset` cover the whole list once, in its order; `total` counts it."""
    for job_id in ("a", "b", "c", "d", "e"):
        submit(queue, job_id)
    first = queue.claim("w", None, 30)
    queue.finish(first.id, "w", "failed", error_kind="oom", error_message="out of memory")
    queue.claim("w", None, 30)
    whole = [j.id for j in queue.list()]
    pages = [[j.id for j in queue.list(limit=2, offset=offset)] for offset in (0, 2, 4, 6)]
    assert pages == [whole[0:2], whole[2:4], whole[4:5], []]
    assert (queue.total(), queue.total(("queued",)), queue.total(("queued", "failed"))) == (5, 3, 4)
    assert [j.id for j in queue.list(("queued",), limit=2, offset=1)] == [j.id for j in queue.list(("queued",))][1:3]


def test_cancel_queued_job_never_runs(queue):
    submit(queue, "a")
    outcome = queue.cancel("a", "not needed")
    assert (outcome.state, outcome.job_id) == ("cancelled", "a")
    job = queue.get("a")
    assert (job.state, job.error_kind, job.cancel_reason) == ("cancelled", "cancelled", "not needed")
    assert queue.claim("w", None, 30) is None


def test_cancel_running_job_asks_its_worker(queue):
    submit(queue, "a")
    queue.claim("w", 0, 30)
    outcome = queue.cancel("a", "changed my mind")
    assert outcome.state == "running" and "next step" in outcome.message
    beat = queue.heartbeat("a", "w", 30)
    assert (beat.cancel_requested, beat.cancel_reason) == (True, "changed my mind")
    job = queue.finish("a", "w", "cancelled", error_kind="cancelled", error_message="changed my mind (during denoising_loop)")
    assert job.state == "cancelled"
    assert [e["state"] for e in queue.events("a")] == ["queued", "running", "cancel_requested", "cancelled"]


def test_reap_requeues_once_then_fails(queue):
    submit(queue, "a")
    queue.claim("w1", 0, 30)
    queue.heartbeat("a", "w1", 30, Progress(stage="denoising_loop", step=1, total_steps=2))
    assert queue.reap_expired(on_death="requeue", max_attempts=2) == []  # the lease is still valid

    (first,) = queue.reap_expired(now=soon(), on_death="requeue", max_attempts=2)
    assert (first.outcome, first.job.state, first.job.attempts) == ("requeued", "queued", 1)
    assert "denoising_loop" in first.message
    with pytest.raises(LeaseLost):
        queue.heartbeat("a", "w1", 30)
    with pytest.raises(LeaseLost):
        queue.finish("a", "w1", "succeeded")

    again = queue.claim("w2", 1, 30)
    assert (again.id, again.attempts, again.worker_id) == ("a", 2, "w2")
    (second,) = queue.reap_expired(now=soon(), on_death="requeue", max_attempts=2)
    assert (second.outcome, second.job.state, second.job.error_kind) == ("failed", "failed", "worker_died")
    assert second.job.error_message == "worker died during start-up"
    assert queue.claim("w3", None, 30) is None
    assert queue.reap_expired(now=soon() + LATER) == []


def test_reap_in_fail_mode_fails_at_once(queue):
    submit(queue, "a")
    queue.claim("w1", 0, 30)
    (reaped,) = queue.reap_expired(now=soon(), on_death="fail", max_attempts=2)
    assert (reaped.outcome, reaped.job.state, reaped.job.error_kind) == ("failed", "failed", "worker_died")


def test_reap_of_a_job_being_cancelled_cancels_it(queue):
    submit(queue, "a")
    queue.claim("w1", 0, 30)
    queue.cancel("a", "stop")
    (reaped,) = queue.reap_expired(now=soon())
    assert reaped.job.state == "cancelled"
    assert reaped.job.error_message.startswith("stop (worker died")


def test_requeue_by_a_stopping_worker(queue):
    submit(queue, "a")
    queue.claim("w1", 0, 30)
    job = queue.requeue("a", "w1", "worker stopping")
    assert (job.state, job.attempts, job.worker_id) == ("queued", 0, None)
    with pytest.raises(LeaseLost):
        queue.requeue("a", "w1", "again")
    assert queue.claim("w2", 0, 30).attempts == 1


def test_final_states_never_change(queue):
    for job_id in ("s", "f", "c"):
        submit(queue, job_id)
    queue.claim("w", None, 30)
    queue.finish("s", "w", "succeeded")
    queue.claim("w", None, 30)
    queue.finish("f", "w", "failed", error_kind="oom", error_message="out of memory")
    queue.cancel("c")
    for job_id, state in (("s", "succeeded"), ("f", "failed"), ("c", "cancelled")):
        with pytest.raises(LeaseLost):
            queue.finish(job_id, "w", "succeeded")
        with pytest.raises(LeaseLost):
            queue.heartbeat(job_id, "w", 30)
        with pytest.raises(LeaseLost):
            queue.requeue(job_id, "w", "again")
        assert queue.cancel(job_id).state == state
        with pytest.raises(QueueError):
            queue.set_priority(job_id, 3)
        assert queue.reap_expired(now=soon()) == []
        assert queue.get(job_id).state == state
    assert queue.get("f").error_message == "out of memory"


def test_finish_needs_a_final_state(queue):
    submit(queue, "a")
    queue.claim("w", None, 30)
    with pytest.raises(QueueError, match="not a final state"):
        queue.finish("a", "w", "queued")


def test_unknown_job_is_not_found(queue):
    with pytest.raises(JobNotFound, match="no job 'nope'"):
        queue.get("nope")
    with pytest.raises(JobNotFound):
        queue.cancel("nope")
    assert queue.events("nope") == []


def test_two_handles_see_the_same_queue(queue_url):
    first, second = open_url(queue_url), open_url(queue_url)
    submit(first, "a")
    assert second.get("a").state == "queued"
    assert second.claim("w", None, 30).id == "a"
    assert first.claim("w", None, 30) is None


def _claim_until_empty(url: str, worker: str, out: "mp.Queue") -> None:
    queue = open_url(url)
    claimed = []
    while (job := queue.claim(worker, None, 30)) is not None:
        claimed.append(job.id)
        queue.finish(job.id, worker, "succeeded")
    out.put(claimed)


def test_concurrent_claims_by_several_processes_never_give_a_job_twice(queue_url):
    queue = open_url(queue_url)
    ids = [f"{i:04x}" for i in range(300)]
    for job_id in ids:
        submit(queue, job_id)
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    workers = [ctx.Process(target=_claim_until_empty, args=(queue_url, f"w{n}", out)) for n in range(4)]
    for p in workers:
        p.start()
    results = [out.get(timeout=120) for _ in workers]
    for p in workers:
        p.join(timeout=30)
        assert p.exitcode == 0
    claimed = [job_id for r in results for job_id in r]
    assert len(claimed) == len(set(claimed)), "a job was claimed twice"
    assert sorted(claimed) == ids, "a job was lost"
    assert queue.counts()["succeeded"] == len(ids)
    for job_id in ids[:20]:
        assert [e["state"] for e in queue.events(job_id)] == ["queued", "running", "succeeded"]


def test_unknown_queue_url_is_refused():
    with pytest.raises(QueueUnavailable, match="neither sqlite"):
        open_url("mysql://u:secret@h/db")


def test_unreachable_postgres_names_the_url_without_password():
    url = f"postgresql://i2vmon:secret@127.0.0.1:{free_port()}/queue"
    with pytest.raises(QueueUnavailable, match="cannot reach the PostgreSQL queue") as caught:
        open_url(url)
    assert "secret" not in str(caught.value) and "i2vmon:***@" in str(caught.value)


def test_a_one_gpu_worker_leaves_a_job_that_asks_for_a_group_of_gpus(queue):
    queue.submit(dataclasses.replace(PARAMS, gpus=2), "/in/pair.png", job_id="pair")
    assert queue.claim("single", 0, 30) is None
    assert queue.claim("group-of-4", 0, 30, gpus=4).id == "pair"


def test_a_group_claims_the_jobs_it_can_hold_in_queue_order_and_leaves_larger_ones(queue):
    queue.submit(dataclasses.replace(PARAMS, gpus=4), "/in/four.png", job_id="four")
    queue.submit(PARAMS, "/in/one.png", job_id="one")
    queue.submit(dataclasses.replace(PARAMS, gpus=2), "/in/two.png", job_id="two")
    assert queue.claim("pair", 0, 30, gpus=2).id == "one"
    assert queue.claim("pair", 0, 30, gpus=2).id == "two"
    assert queue.claim("pair", 0, 30, gpus=2) is None


def test_ended_since_lists_the_jobs_that_ended_from_a_time_on_in_the_order_they_ended(queue):
    for job_id in ("a", "b", "c", "d"):
        submit(queue, job_id)
    before = datetime.now(timezone.utc) - timedelta(seconds=1)
    first = queue.claim("w", None, 30)
    queue.finish(first.id, "w", "failed", error_kind="oom", error_message="out of memory")
    queue.cancel("c")
    second = queue.claim("w", None, 30)
    queue.finish(second.id, "w", "succeeded")
    ended = queue.ended_since(before)
    assert [(j.id, j.state) for j in ended] == [("a", "failed"), ("c", "cancelled"), ("b", "succeeded")]
    assert [j.id for j in queue.ended_since(before, limit=2)] == ["a", "c"]
    assert [j.id for j in queue.ended_since(ended[-1].finished_at)] == ["b"]
    assert queue.ended_since(datetime.now(timezone.utc) + LATER) == []
    # the interface's fallback (a backend without its own query) gives the same answer
    assert [j.id for j in JobQueue.ended_since(queue, before)] == ["a", "c", "b"]


def test_a_job_keeps_who_queued_it(queue):
    queue.submit(PARAMS, "/in/a.png", job_id="mine", submitted_by="ana")
    queue.submit(PARAMS, "/in/b.png", job_id="anyone")
    assert queue.get("mine").submitted_by == "ana"
    assert queue.get("anyone").submitted_by is None
