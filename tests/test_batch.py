"""tc.BatchJob with the real SDK against LocalServer: splitting by the API's limits, results
matched to their ids, the one retry of errored and expired requests, the batch price in the
ledger, resuming after a kill (a real subprocess killed while polling, and a kill between the
create call and recording its batch), the async form, and bad input."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import anthropic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tidyctx as tc
from tidyctx import pricing
from tidyctx._cli import main
from tidyctx._request import cache_markers
from tidyctx.batch import BatchError, BatchJob, JobBusy, Limits, shared_breakpoints, split
from tidyctx.batch._state import Files, job_lock, ranges
from tidyctx.ledger import read_ledger, summarize_ledger
from tidyctx.testing import Fail, LocalServer

MODEL = "claude-sonnet-4-6"
SRC = str(Path(tc.__file__).resolve().parents[1])
# Long enough to be cached (1,024 tokens for Sonnet), shared by every request.
SYSTEM = "You sort customer emails into billing, bug, account or other. " * 120


def request(custom_id: str, **extra: Any) -> dict[str, Any]:
    params = {
        "model": MODEL,
        "max_tokens": 64,
        "system": SYSTEM,
        "messages": [{"role": "user", "content": f"email {custom_id}"}],
        **extra,
    }
    return {"custom_id": custom_id, "params": params}


def echo(body: dict[str, Any]) -> str:
    """The reply names the email it answers, so a result can be checked against its id."""
    content = body["messages"][-1]["content"]
    text = content if isinstance(content, str) else content[-1]["text"]
    return f"answer to {text}"


def client_for(server: LocalServer) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        base_url=server.base_url, api_key="test", max_retries=0, _strict_response_validation=True
    )


def creates(server: LocalServer) -> list[list[str]]:
    """The custom_ids of each batch created, in order."""
    return [
        [item["custom_id"] for item in r.body["requests"]]
        for r in server.requests
        if r.method == "POST" and r.path == "/v1/messages/batches"
    ]


def check_matched(results: list[dict[str, Any]]) -> None:
    for row in results:
        if row["result"]["type"] == "succeeded":
            text = row["result"]["message"]["content"][0]["text"]
            assert text == f"answer to email {row['custom_id']}"


class FirstTime:
    """A batch_outcome: ``outcome`` for the ids ``chosen`` says, the first time each is seen."""

    def __init__(self, choose: Any) -> None:
        self.choose = choose
        self.seen: set[str] = set()

    def __call__(self, custom_id: str, params: dict[str, Any]) -> Any:
        outcome = self.choose(custom_id)
        if outcome is None or custom_id in self.seen:
            return None
        self.seen.add(custom_id)
        return outcome


# ---------------------------------------------------------------------------- the job


def test_ten_thousand_requests_split_within_the_limits_and_matched_to_their_ids(
    tmp_path: Path,
) -> None:
    ids = [f"t{i:05d}" for i in range(10_000)]
    with LocalServer(responder=echo, batch_polls=2) as srv, client_for(srv) as client:
        job = BatchJob(
            [request(i) for i in ids],
            job="backfill",
            dir=tmp_path,
            max_requests=3_000,
            poll_interval=0.0,
            max_interval=0.0,
            ledger=tmp_path / "ledger.jsonl",
        )
        status = job.run(client)
        batches = creates(srv)
        bodies = [r.raw for r in srv.requests if r.path == "/v1/messages/batches"]
    assert [len(b) for b in batches] == [3_000, 3_000, 3_000, 1_000]
    assert [i for b in batches for i in b] == ids  # each sent once, in order
    assert all(len(raw) <= tc.batch.MAX_BYTES for raw in bodies)
    results = list(job.results())
    assert sorted(r["custom_id"] for r in results) == ids
    assert {r["result"]["type"] for r in results} == {"succeeded"}
    check_matched(results)
    assert status.complete and status.by_type == {"succeeded": 10_000}
    # The pipeline's 1-hour breakpoints let the requests share the system prompt's cache.
    usage = [pricing.usage_dict(r["result"]["message"]["usage"]) for r in results]
    assert sum(u["cache_read_input_tokens"] for u in usage) > 9_000 * 1_000
    assert all(r["result"]["message"]["usage"]["service_tier"] == "batch" for r in results)
    # Priced at the batch discount: half the standard price, cache reads and writes included.
    assert status.cost == pytest.approx(status.standard_cost / 2)
    expected = sum(pricing.cost(u, MODEL, batch=True).total for u in usage)
    assert status.cost == pytest.approx(expected)
    rows = read_ledger(tmp_path / "ledger.jsonl")
    assert len(rows) == 10_000
    assert {(r["kind"], r["batch"], r["job"], r["run"]) for r in rows} == {
        ("batch", True, "backfill", "backfill")
    }
    assert summarize_ledger(tmp_path / "ledger.jsonl").total.cost == pytest.approx(status.cost)


def test_batches_stay_within_the_byte_limit_as_the_sdk_sends_them(tmp_path: Path) -> None:
    # Non-ASCII text takes more bytes escaped than raw: the size counted is an upper bound.
    items = [request(f"r{i}", system=f"{i} Grüße 🙂 " * (20 + i % 30)) for i in range(60)]
    with LocalServer(responder=echo) as srv, client_for(srv) as client:
        status = BatchJob(items, dir=tmp_path, max_bytes=12_000, pipeline=()).run(client)
        bodies = [r.raw for r in srv.requests if r.path == "/v1/messages/batches"]
    assert status.complete and len(bodies) > 3
    assert all(len(raw) <= 12_000 for raw in bodies)
    assert sum(len(b) for b in creates(srv)) == 60


def test_errored_and_expired_requests_are_retried_once_in_a_new_batch(tmp_path: Path) -> None:
    def choose(custom_id: str) -> Any:
        return {
            "exp": "expired",  # expired the first time
            "err": Fail(500),  # an api_error the first time
            "ovl": Fail(529),  # overloaded the first time
            "bad": Fail(400, message="the request's own fault"),  # not retried
        }.get(custom_id[:3])

    outcome = FirstTime(choose)

    def always_failing(custom_id: str, params: dict[str, Any]) -> Any:
        return Fail(500) if custom_id.startswith("die") else outcome(custom_id, params)

    ids = ["ok-1", "exp-1", "err-1", "ovl-1", "bad-1", "die-1", "ok-2", "exp-2"]
    with (
        LocalServer(responder=echo, batch_outcome=always_failing) as srv,
        client_for(srv) as client,
    ):
        status = BatchJob([request(i) for i in ids], dir=tmp_path, poll_interval=0).run(client)
        batches = creates(srv)
    assert batches[0] == ids
    assert sorted(batches[1]) == sorted(["exp-1", "err-1", "ovl-1", "die-1", "exp-2"])
    assert len(batches) == 2  # one retry, never a third try
    final = {r["custom_id"]: r for r in BatchJob.open(status.job, dir=tmp_path).results()}
    assert sorted(final) == sorted(ids)
    kinds = {i: (r["result"]["type"], r["attempt"]) for i, r in final.items()}
    assert kinds == {
        "ok-1": ("succeeded", 1),
        "ok-2": ("succeeded", 1),
        "exp-1": ("succeeded", 2),
        "exp-2": ("succeeded", 2),
        "err-1": ("succeeded", 2),
        "ovl-1": ("succeeded", 2),
        "bad-1": ("errored", 1),
        "die-1": ("errored", 2),
    }
    check_matched(list(final.values()))
    assert status.retried == 5 and status.by_type == {"succeeded": 6, "errored": 2}


def test_a_request_expired_by_the_24_hour_limit_is_retried(tmp_path: Path) -> None:
    now = [1_000_000.0]
    with (
        LocalServer(responder=echo, batch_polls=5, clock=lambda: now[0]) as srv,
        client_for(srv) as client,
    ):
        job = BatchJob([request("a"), request("b")], dir=tmp_path, poll_interval=0)
        assert not job.run(client, wait=False).complete
        now[0] += 24 * 3600  # the batch's expires_at passes: it ends, every request expired
        srv.batch_polls = 10**9  # only the expiry can end a batch now
        first = client.messages.batches.retrieve(batch_ids(srv)[0])
        assert first.request_counts.expired == 2
        srv.batch_polls = 0
        status = job.run(client)
    assert status.complete and status.retried == 2
    assert {r["attempt"] for r in job.results()} == {2}


def batch_ids(server: LocalServer) -> list[str]:
    """The server's batches, oldest first."""
    with client_for(server) as client:
        return [b.id for b in client.messages.batches.list()][::-1]


def test_the_async_form_runs_the_same_job(tmp_path: Path) -> None:
    outcome = FirstTime(lambda i: "expired" if i.endswith("3") else None)
    with LocalServer(responder=echo, batch_polls=3, batch_outcome=outcome) as srv:

        async def go() -> tc.batch.JobStatus:
            async with anthropic.AsyncAnthropic(
                base_url=srv.base_url, api_key="test", max_retries=0
            ) as client:
                job = BatchJob(
                    [request(f"a{i}") for i in range(25)],
                    dir=tmp_path,
                    max_requests=10,
                    poll_interval=0,
                )
                return await job.arun(client)

        status = asyncio.run(go())
        batches = creates(srv)
    assert status.complete and status.by_type == {"succeeded": 25}
    assert [len(b) for b in batches] == [10, 10, 5, 1, 1, 1]
    assert status.retried == 3


@settings(max_examples=200)
@given(
    sizes=st.lists(st.integers(1, 400), max_size=60),
    most=st.integers(1, 12),
    room=st.integers(0, 2_000),
)
def test_split_keeps_order_and_every_batch_within_both_limits(
    sizes: list[int], most: int, room: int
) -> None:
    limits = Limits(requests=most, bytes=len('{"requests": []}') + 400 + room)
    chunks = split(sizes, limits)
    assert [i for start, stop in chunks for i in range(start, stop)] == list(range(len(sizes)))
    for start, stop in chunks:
        assert 1 <= stop - start <= most
        body = len('{"requests": []}') + sum(sizes[start:stop]) + 2 * (stop - start - 1)
        assert body <= limits.bytes
    # Greedy: the next request would not have fitted in the batch before it.
    for (start, stop), _ in itertools.pairwise(chunks):
        body = len('{"requests": []}') + sum(sizes[start : stop + 1]) + 2 * (stop - start)
        assert stop - start == most or body > limits.bytes


@settings(max_examples=200)
@given(st.sets(st.integers(0, 300)))
def test_ranges_hold_exactly_the_indices(indices: set[int]) -> None:
    spans = ranges(list(indices))
    assert [i for start, stop in spans for i in range(start, stop)] == sorted(indices)
    assert all(a[1] < b[0] for a, b in itertools.pairwise(spans))  # not adjacent


# ---------------------------------------------------------------------------- breakpoints

WORDS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa"]


def essay(seed: int, words: int = 1_500) -> str:
    return " ".join(WORDS[(seed * 7 + i * i) % len(WORDS)] + str(i % 13) for i in range(words))


def questions(essays: int, per_essay: int) -> list[dict[str, Any]]:
    """Requests sharing a system prompt, and per essay, the essay: then one question each."""
    out = []
    for e in range(essays):
        for q in range(per_essay):
            content = [
                {"type": "text", "text": essay(e)},
                {"type": "text", "text": f"Question {q}: what is the main claim?"},
            ]
            out.append(request(f"e{e}-q{q}", messages=[{"role": "user", "content": content}]))
    return out


def test_breakpoints_go_where_requests_share_a_prefix_and_nowhere_else() -> None:
    params = [r["params"] for r in questions(2, 3)]
    params[0]["messages"][0]["content"][1]["cache_control"] = {"type": "ephemeral"}
    lone = {**request("lone")["params"], "system": "Be brief."}  # shares under 1,024 tokens
    marked = shared_breakpoints([*params, lone])
    one_hour = {"type": "ephemeral", "ttl": "1h"}
    for m in marked[:6]:
        # The system prompt all share, then the essay three share; not the question.
        assert cache_markers(m) == [
            ("system[0]", one_hour),
            ("messages[0].content[0]", one_hour),
        ]
    assert cache_markers(marked[6]) == []
    assert marked[6] == lone  # sent as given
    # The caller's marker on the first question is gone; the text is the same.
    question = marked[0]["messages"][0]["content"][1]
    assert question == {"type": "text", "text": "Question 0: what is the main claim?"}
    assert [m["system"][0]["text"] for m in marked[:6]] == [SYSTEM] * 6
    assert "cache_control" in params[0]["messages"][0]["content"][1]  # the input is untouched


@settings(max_examples=25)
@given(
    groups=st.lists(st.tuples(st.integers(0, 3), st.integers(1, 3)), min_size=1, max_size=6),
    systems=st.lists(st.sampled_from(["long", "short"]), min_size=6, max_size=6),
)
def test_shared_breakpoints_mark_only_prefixes_another_request_shares(
    groups: list[tuple[int, int]], systems: list[str]
) -> None:
    params = []
    for n, (doc, asked) in enumerate(groups):
        for q in range(asked):
            content = [
                {"type": "text", "text": essay(doc, 300)},
                {"type": "text", "text": f"Question {q}"},
            ]
            system = SYSTEM if systems[n] == "long" else "Be brief."
            params.append(
                {
                    **request("x")["params"],
                    "system": system,
                    "messages": [{"role": "user", "content": content}],
                }
            )
    marked = shared_breakpoints(params)

    def prefix(p: dict[str, Any], blocks: int) -> str:
        return json.dumps([p["system"], p["messages"][0]["content"][:blocks]])

    depth = {"system[0]": 0, "messages[0].content[0]": 1, "messages[0].content[1]": 2}
    shared = Counter(prefix(p, n) for p in params for n in range(3))
    one_hour = {"type": "ephemeral", "ttl": "1h"}
    for before, after in zip(params, marked, strict=True):
        found = cache_markers(after)
        assert len(found) <= 4
        # A long system prompt another request shares is always marked; the short one never.
        assert bool(found) == (before["system"] == SYSTEM and shared[prefix(before, 0)] >= 2)
        for path, marker in found:
            assert marker == one_hour
            # Another request has the same prefix, so reads what this one writes.
            assert shared[prefix(before, depth[path])] >= 2
        unmarked = json.loads(
            json.dumps(after).replace(f", {json.dumps({'cache_control': one_hour})[1:-1]}", "")
        )
        assert unmarked["messages"] == before["messages"]


def test_shared_breakpoints_cost_less_than_none_and_than_caching_each_request(
    tmp_path: Path,
) -> None:
    items = questions(4, 3)
    costs = {}
    for name, options in {
        "shared": {},
        "none": {"breakpoints": "keep"},
        "each": {"pipeline": [tc.cache(ttl="1h")], "breakpoints": "keep"},
    }.items():
        with LocalServer(responder=echo) as srv, client_for(srv) as client:
            job = BatchJob(items, job=name, dir=tmp_path, **options)  # type: ignore[arg-type]
            costs[name] = job.run(client).cost
    # Caching each request writes its own question at the 1-hour price and reads no essay.
    assert costs["shared"] < costs["none"] < costs["each"]


# ---------------------------------------------------------------------------- resuming


def polls(server: LocalServer) -> Counter[str]:
    return Counter(
        r.path.rsplit("/", 1)[-1]
        for r in server.requests
        if r.method == "GET" and r.path.startswith("/v1/messages/batches/msgbatch_")
    )


def test_a_process_killed_while_polling_finishes_without_resubmitting(tmp_path: Path) -> None:
    ids = [f"q{i:02d}" for i in range(30)]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(request(i)) + "\n" for i in ids))
    outcome = FirstTime(lambda i: "expired" if i.endswith("7") else None)
    jobs = tmp_path / "jobs"
    fast = ["--dir", str(jobs), "--poll-interval", "0.01", "--max-interval", "0.02"]
    with LocalServer(responder=echo, batch_polls=10**9, batch_outcome=outcome) as srv:
        env = {
            **os.environ,
            "ANTHROPIC_BASE_URL": srv.base_url,
            "ANTHROPIC_API_KEY": "test",
            "PYTHONPATH": SRC,
        }
        cli = [sys.executable, "-m", "tidyctx", "batch"]
        submit = [*cli, "submit", str(tmp_path / "in.jsonl"), "--job", "nightly"]
        proc = subprocess.Popen(
            [*submit, "--max-requests", "10", "--wait", *fast],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            guard = time.monotonic() + 300  # a stuck child fails the test, not hangs it
            while len(polls(srv)) < 3 or min(polls(srv).values()) < 3:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                assert time.monotonic() < guard
                time.sleep(0.01)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            if proc.stderr:
                proc.stderr.close()
        assert proc.returncode == -signal.SIGKILL
        state = json.loads((jobs / "nightly.batch.json").read_text())
        assert [c["status"] for c in state["chunks"]] == ["in_progress"] * 3
        assert len(creates(srv)) == 3

        srv.batch_polls = 1  # the open batches end at their next retrieve
        done = subprocess.run(
            [*cli, "results", "nightly", "--wait", *fast], env=env, capture_output=True, text=True
        )
        batches = creates(srv)
    assert done.returncode == 0, done.stderr
    # Each batch sent once; its expired request retried once, in a batch of its own.
    assert [i for b in batches[:3] for i in b] == ids
    assert batches[3:] == [["q07"], ["q17"], ["q27"]]
    results = [json.loads(line) for line in done.stdout.splitlines()]
    assert sorted(r["custom_id"] for r in results) == ids
    assert {r["result"]["type"] for r in results} == {"succeeded"}
    check_matched(results)


@pytest.mark.parametrize("moment", ["create", "results"])
def test_a_process_killed_inside_a_create_or_a_results_call_finishes_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, moment: str
) -> None:
    """The server kills the child while it answers the child's second create call (the batch
    is made, its id not yet recorded) or second results call (the first batch's results saved,
    the second's marked as being saved)."""
    from tidyctx.testing import _batches

    ids = [f"k{i:02d}" for i in range(30)]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(request(i)) + "\n" for i in ids))
    jobs, ledger = tmp_path / "jobs", tmp_path / "ledger.jsonl"
    options = ["--dir", str(jobs), "--ledger", str(ledger), "--poll-interval", "0.01"]
    options += ["--max-interval", "0.02"]
    child: list[subprocess.Popen[bytes]] = []
    calls = [0]
    real = getattr(_batches.Batches, moment)

    def kill_on_the_second(self: Any, *args: Any) -> Any:
        out = real(self, *args)
        calls[0] += 1
        if calls[0] == 2 and child:
            child[0].kill()
            child[0].wait()
        return out

    monkeypatch.setattr(_batches.Batches, moment, kill_on_the_second)
    with LocalServer(responder=echo, batch_polls=2) as srv:
        env = {
            **os.environ,
            "ANTHROPIC_BASE_URL": srv.base_url,
            "ANTHROPIC_API_KEY": "test",
            "PYTHONPATH": SRC,
        }
        cli = [sys.executable, "-m", "tidyctx", "batch"]
        submit = [*cli, "submit", str(tmp_path / "in.jsonl"), "--job", "k", "--wait"]
        child.append(
            subprocess.Popen(
                [*submit, "--max-requests", "10", *options],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        assert child[0].wait() == -signal.SIGKILL
        child.clear()
        done = subprocess.run(
            [*cli, "results", "k", "--wait", *options], env=env, capture_output=True, text=True
        )
        batches = creates(srv)
    assert done.returncode == 0, done.stderr
    assert [i for b in batches for i in b] == ids  # each request sent in exactly one batch
    results = [json.loads(line) for line in done.stdout.splitlines()]
    assert sorted(r["custom_id"] for r in results) == ids
    check_matched(results)
    assert sorted(r["custom_id"] for r in read_ledger(ledger)) == ids  # one row each


def test_a_job_killed_again_and_again_at_arbitrary_points_sends_each_request_once(
    tmp_path: Path,
) -> None:
    """Kill the child each time the server has answered a few more requests, wherever the
    child is then (saving, creating, polling, reading results), and start it again."""
    ids = [f"a{i:02d}" for i in range(40)]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(request(i)) + "\n" for i in ids))
    outcome = FirstTime(lambda i: "expired" if i.endswith(("3", "8")) else None)
    jobs, ledger = tmp_path / "jobs", tmp_path / "ledger.jsonl"
    options = ["--dir", str(jobs), "--ledger", str(ledger), "--poll-interval", "0.01"]
    options += ["--max-interval", "0.02"]
    with LocalServer(responder=echo, batch_polls=3, batch_outcome=outcome) as srv:
        env = {
            **os.environ,
            "ANTHROPIC_BASE_URL": srv.base_url,
            "ANTHROPIC_API_KEY": "test",
            "PYTHONPATH": SRC,
        }
        cli = [sys.executable, "-m", "tidyctx", "batch"]
        first = [*cli, "submit", str(tmp_path / "in.jsonl"), "--job", "a", "--max-requests", "8"]
        again = [*cli, "results", "a"]
        kills = 0
        for step in (3, 5, 7, 9, 11, 13):
            command = first if kills == 0 and not (jobs / "a.batch.json").exists() else again
            proc = subprocess.Popen(
                [*command, "--wait", *options],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            target = len(srv.requests) + step
            while len(srv.requests) < target and proc.poll() is None:
                time.sleep(0.001)
            proc.kill()
            if proc.wait() == -signal.SIGKILL:
                kills += 1
        done = subprocess.run([*again, "--wait", *options], env=env, capture_output=True)
        batches = creates(srv)
    assert kills >= 3 and done.returncode == 0, done.stderr
    sent = Counter(i for b in batches for i in b)
    retried = {i for i in ids if i.endswith(("3", "8"))}
    assert sent == {i: 2 if i in retried else 1 for i in ids}
    results = [json.loads(line) for line in done.stdout.splitlines()]
    assert sorted(r["custom_id"] for r in results) == ids
    check_matched(results)
    assert sorted(r["custom_id"] for r in read_ledger(ledger)) == ids


class Killed(BaseException):
    """Stands for the process dying at this point."""


def test_a_kill_between_create_and_recording_finds_the_batch_instead_of_resubmitting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from anthropic.resources.messages.batches import Batches

    real_create = Batches.create

    def create_then_die(self: Batches, **kwargs: Any) -> Any:
        real_create(self, **kwargs)
        raise Killed

    items = [request(f"w{i}") for i in range(12)]
    with LocalServer(responder=echo, batch_polls=3) as srv, client_for(srv) as client:
        job = BatchJob(items, job="window", dir=tmp_path, max_requests=5, poll_interval=0)
        monkeypatch.setattr(Batches, "create", create_then_die)
        with pytest.raises(Killed):
            job.run(client)
        monkeypatch.setattr(Batches, "create", real_create)
        state = json.loads((tmp_path / "window.batch.json").read_text())
        assert [c["status"] for c in state["chunks"]] == ["submitting", "pending", "pending"]
        # Someone else's batch of the same size, made in the same minutes: not this job's.
        other = client.messages.batches.create(
            requests=[{"custom_id": f"x{i}", "params": request("x")["params"]} for i in range(5)]  # type: ignore[typeddict-item]
        )
        status = BatchJob.open("window", dir=tmp_path, poll_interval=0).run(client)
        batches = creates(srv)
        first = batch_ids(srv)[0]
    assert status.complete and status.by_type == {"succeeded": 12}
    assert [len(b) for b in batches] == [5, 5, 5, 2]  # the job's first, the other, two more
    assert batches[0] == [f"w{i}" for i in range(5)]
    saved = json.loads((tmp_path / "window.batch.json").read_text())
    assert saved["chunks"][0]["batch_id"] == first
    assert set(saved["chunks"][0]["rejected"]) <= {other.id}
    assert other.id not in {c["batch_id"] for c in saved["chunks"]}
    check_matched(list(BatchJob.open("window", dir=tmp_path).results()))


def test_the_async_form_finds_a_batch_a_kill_left_unrecorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from anthropic.resources.messages.batches import AsyncBatches

    real_create = AsyncBatches.create

    async def create_then_die(self: AsyncBatches, **kwargs: Any) -> Any:
        await real_create(self, **kwargs)
        raise Killed

    async def go(srv: LocalServer) -> tc.batch.JobStatus:
        async with anthropic.AsyncAnthropic(
            base_url=srv.base_url, api_key="test", max_retries=0
        ) as client:
            job = BatchJob([request(f"w{i}") for i in range(7)], job="w", dir=tmp_path)
            monkeypatch.setattr(AsyncBatches, "create", create_then_die)
            with pytest.raises(Killed):
                await job.arun(client)
            monkeypatch.setattr(AsyncBatches, "create", real_create)
            return await BatchJob.open("w", dir=tmp_path, poll_interval=0).arun(client)

    with LocalServer(responder=echo, batch_polls=3) as srv:
        status = asyncio.run(go(srv))
        assert creates(srv) == [[f"w{i}" for i in range(7)]]
    assert status.complete and status.by_type == {"succeeded": 7}


def test_a_kill_before_the_create_reached_the_api_sends_the_batch_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from anthropic.resources.messages.batches import Batches

    def die(self: Batches, **kwargs: Any) -> Any:
        raise Killed

    with LocalServer(responder=echo) as srv, client_for(srv) as client:
        job = BatchJob([request("a"), request("b")], job="early", dir=tmp_path)
        real_create = Batches.create
        monkeypatch.setattr(Batches, "create", die)
        with pytest.raises(Killed):
            job.run(client)
        monkeypatch.setattr(Batches, "create", real_create)
        status = BatchJob.open("early", dir=tmp_path).run(client)
        assert creates(srv) == [["a", "b"]]
    assert status.complete


def test_a_lost_connection_on_create_is_looked_up_not_resent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from anthropic.resources.messages.batches import Batches

    real_create = Batches.create

    def create_then_lose_the_answer(self: Batches, **kwargs: Any) -> Any:
        real_create(self, **kwargs)
        raise anthropic.APIConnectionError(request=None)  # type: ignore[arg-type]

    with LocalServer(responder=echo, batch_polls=2) as srv, client_for(srv) as client:
        job = BatchJob([request("a"), request("b")], dir=tmp_path, poll_interval=0)
        monkeypatch.setattr(Batches, "create", create_then_lose_the_answer)
        status = job.run(client)
        assert creates(srv) == [["a", "b"]]
    assert status.complete


def test_a_create_turned_away_with_429_is_sent_later_while_others_are_polled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import httpx
    from anthropic.resources.messages.batches import Batches

    real_create = Batches.create
    turned_away: list[int] = []  # the polls seen when the create was turned away

    def queue_full_once(self: Batches, **kwargs: Any) -> Any:
        if kwargs["requests"][0]["custom_id"] == "q3":
            turned_away.append(sum(polls(srv).values()))
        if len(turned_away) == 1:
            response = httpx.Response(
                429,
                headers={"retry-after": "1"},  # the job waits a second before sending it again
                request=httpx.Request("POST", "http://127.0.0.1/v1/messages/batches"),
            )
            raise anthropic.RateLimitError("queue full", response=response, body=None)
        return real_create(self, **kwargs)

    monkeypatch.setattr(Batches, "create", queue_full_once)
    with LocalServer(responder=echo, batch_polls=10**6) as srv, client_for(srv) as client:
        items = [request(f"q{i}") for i in range(6)]
        job = BatchJob(items, dir=tmp_path, max_requests=3, poll_interval=0.01)
        first = job.run(client, wait=False)  # the second batch held back: not sent yet
        assert [b["status"] for b in first.batches] == ["in_progress", "pending"]
        srv.batch_polls = 3
        status = job.run(client)
        assert creates(srv) == [["q0", "q1", "q2"], ["q3", "q4", "q5"]]
    assert len(turned_away) == 2 and turned_away[1] > turned_away[0]  # polled meanwhile
    assert status.complete


def test_an_unreadable_answer_to_create_leaves_the_batch_to_be_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from anthropic.resources.messages.batches import Batches

    real_create = Batches.create

    def create_then_fail_to_read(self: Batches, **kwargs: Any) -> Any:
        real_create(self, **kwargs)
        raise ValueError("the answer could not be read")

    with LocalServer(responder=echo) as srv, client_for(srv) as client:
        job = BatchJob([request("a")], job="unread", dir=tmp_path)
        monkeypatch.setattr(Batches, "create", create_then_fail_to_read)
        with pytest.raises(ValueError, match="could not be read"):
            job.run(client)
        monkeypatch.setattr(Batches, "create", real_create)
        assert BatchJob.open("unread", dir=tmp_path).run(client).complete
        assert creates(srv) == [["a"]]


def test_lost_connections_while_polling_and_reading_results_are_waited_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from anthropic.resources.messages.batches import Batches

    real_retrieve, real_results = Batches.retrieve, Batches.results
    failures = {"retrieve": 2, "results": 1}

    def flaky_retrieve(self: Batches, *args: Any, **kwargs: Any) -> Any:
        if failures["retrieve"]:
            failures["retrieve"] -= 1
            raise anthropic.APIConnectionError(request=None)  # type: ignore[arg-type]
        return real_retrieve(self, *args, **kwargs)

    def results_cut_after_two(self: Batches, *args: Any, **kwargs: Any) -> Any:
        lines = iter(real_results(self, *args, **kwargs))
        if failures["results"]:
            failures["results"] -= 1
            yield next(lines)
            yield next(lines)
            raise anthropic.APIConnectionError(request=None)  # type: ignore[arg-type]
        yield from lines

    monkeypatch.setattr(Batches, "retrieve", flaky_retrieve)
    monkeypatch.setattr(Batches, "results", results_cut_after_two)
    ids = [f"f{i}" for i in range(5)]
    with LocalServer(responder=echo, batch_polls=2) as srv, client_for(srv) as client:
        ledger = tmp_path / "ledger.jsonl"
        job = BatchJob([request(i) for i in ids], dir=tmp_path, poll_interval=0, ledger=ledger)
        status = job.run(client)
        assert len(creates(srv)) == 1
    assert failures == {"retrieve": 0, "results": 0}
    assert status.complete
    assert sorted(r["custom_id"] for r in job.results()) == ids
    assert sorted(r["custom_id"] for r in read_ledger(ledger)) == ids


def test_results_cut_short_by_a_kill_are_read_again_without_doubles(tmp_path: Path) -> None:
    ids = [f"c{i}" for i in range(6)]
    with LocalServer(responder=echo) as srv, client_for(srv) as client:
        ledger = tmp_path / "ledger.jsonl"
        job = BatchJob([request(i) for i in ids], job="cut", dir=tmp_path, ledger=ledger)
        job.run(client)
        files = Files(tmp_path, "cut")
        lines = files.results.read_bytes().splitlines(keepends=True)
        # As if killed while saving: two results whole, the third cut, the batch not marked.
        files.results.write_bytes(b"".join(lines[:2]) + lines[2][:40])
        state = json.loads(files.state.read_text())
        state["chunks"][0]["status"] = "collecting"
        files.state.write_text(json.dumps(state))
        rows = ledger.read_bytes().splitlines(keepends=True)
        ledger.write_bytes(b"".join(rows[:3]))
        BatchJob.open("cut", dir=tmp_path, ledger=ledger).run(client)
        assert len(creates(srv)) == 1
    assert sorted(r["custom_id"] for r in job.results()) == ids
    assert sorted(r["custom_id"] for r in read_ledger(ledger)) == ids


# ---------------------------------------------------------------------------- bad input


def test_a_request_over_the_size_limit_names_its_custom_id(tmp_path: Path) -> None:
    items = [request("small"), request("huge-one", system="x" * 50_000)]
    with pytest.raises(BatchError, match=r"request 'huge-one' \(requests\[1\]\) is [\d,]+ bytes"):
        BatchJob(items, dir=tmp_path, max_bytes=40_000)


def test_duplicate_custom_ids_are_refused_naming_both(tmp_path: Path) -> None:
    items = [request("a"), request("b"), request("a")]
    with pytest.raises(BatchError, match=r"requests\[2\].custom_id: duplicate custom_id 'a' "):
        BatchJob(items, dir=tmp_path)
    assert not list(tmp_path.iterdir())  # nothing written


@pytest.mark.parametrize(
    ("item", "match"),
    [
        (request("no spaces"), r"requests\[0\].custom_id: must be 1 to 64"),
        (request("x" * 65), r"must be 1 to 64"),
        ({"params": request("a")["params"]}, r"custom_id: must be 1 to 64.*None"),
        ({"custom_id": "a", "params": "hi"}, r"requests\[0\] \('a'\).params"),
        (request("a", stream=True), r"request 'a': stream is not supported"),
        ({**request("a"), "id": 1}, r"unknown keys \['id'\]"),
        ("a request", r"requests\[0\]: must be an object"),
        (request("a", temperature=float("nan")), r"request 'a' \(requests\[0\]\): temperature"),
        (request("s", system="x\ud800"), r"request 's' .*system.*surrogate"),
    ],
)
def test_bad_requests_get_a_clear_error(tmp_path: Path, item: Any, match: str) -> None:
    with pytest.raises(BatchError, match=match):
        BatchJob([item], dir=tmp_path)


def test_limits_above_the_apis_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_requests must be an integer from 1 to 100,000"):
        BatchJob([request("a")], dir=tmp_path, max_requests=100_001)
    with pytest.raises(ValueError, match="max_bytes"):
        BatchJob([request("a")], dir=tmp_path, max_bytes=0)
    with pytest.raises(BatchError, match="at least one"):
        BatchJob([], dir=tmp_path)


def test_a_state_file_from_another_job_is_refused(tmp_path: Path) -> None:
    BatchJob([request("a")], job="first", dir=tmp_path)
    BatchJob([request("b")], job="second", dir=tmp_path)
    (tmp_path / "second.batch.json").write_bytes((tmp_path / "first.batch.json").read_bytes())
    with pytest.raises(BatchError, match="holds the state of job 'first', not 'second'"):
        BatchJob.open("second", dir=tmp_path)
    with pytest.raises(BatchError, match="holds the state of job 'first', not 'second'"):
        BatchJob([request("b")], job="second", dir=tmp_path)


def test_a_job_name_reused_with_other_requests_is_refused(tmp_path: Path) -> None:
    BatchJob([request("a")], job="nightly", dir=tmp_path)
    assert BatchJob([request("a")], job="nightly", dir=tmp_path).state.count == 1  # resumed
    with pytest.raises(BatchError, match=r"job 'nightly' in .* was started with other requests"):
        BatchJob([request("a"), request("b")], job="nightly", dir=tmp_path)
    (tmp_path / "nightly.requests.jsonl").write_text("{}\n")
    with pytest.raises(BatchError, match="is not the requests file job 'nightly' was started"):
        BatchJob.open("nightly", dir=tmp_path)
    with pytest.raises(BatchError, match="no batch job 'missing'"):
        BatchJob.open("missing", dir=tmp_path)
    with pytest.raises(BatchError, match=r"job name '\.\./x'"):
        BatchJob([request("a")], job="../x", dir=tmp_path)


def test_a_job_run_by_two_processes_at_once_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    job = BatchJob([request("a")], job="busy", dir=tmp_path)
    with job_lock(Files(tmp_path, "busy")):
        with pytest.raises(JobBusy, match="being run by another process"):
            job.run(object())
        # The command's status shows the files instead.
        monkeypatch.setenv("ANTHROPIC_API_KEY", "test")
        assert main(["batch", "status", "busy", "--dir", str(tmp_path)]) == 0
        out, err = capsys.readouterr()
        assert "0 of 1 requests done" in out and "showing its files" in err


def test_a_request_the_api_refuses_names_its_batch(tmp_path: Path) -> None:
    with LocalServer(api_key="right") as srv:
        wrong = anthropic.Anthropic(base_url=srv.base_url, api_key="wrong", max_retries=0)
        job = BatchJob([request("a")], job="denied", dir=tmp_path)
        with pytest.raises(BatchError, match=r"the API refused batch 0 of job 'denied'.*401"):
            job.run(wrong)
        right = anthropic.Anthropic(base_url=srv.base_url, api_key="right", max_retries=0)
        assert BatchJob.open("denied", dir=tmp_path).run(right).complete  # sent once fixed


# ---------------------------------------------------------------------------- the command


def test_the_command_submits_checks_and_prints_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(request(f"k{i}")) + "\n\n" for i in range(4)))
    jobs = ["--dir", str(tmp_path / "jobs"), "--poll-interval", "0"]
    with LocalServer(responder=echo, batch_polls=2) as srv:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", srv.base_url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", "test")
        assert main(["batch", "submit", str(source), "--job", "cli", *jobs]) == 0
        out = capsys.readouterr().out
        assert "job cli in" in out and "0 of 4 requests done" in out
        assert main(["batch", "results", "cli", *jobs]) == 1
        assert "4 of 4 results still missing" in capsys.readouterr().err
        assert main(["batch", "status", "cli", "--json", *jobs]) == 0
        status = json.loads(capsys.readouterr().out)
        assert status["complete"] and status["results"] == {"succeeded": 4}
        assert main(["batch", "results", "cli", *jobs]) == 0
        results = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert len(creates(srv)) == 1
    assert sorted(r["custom_id"] for r in results) == [f"k{i}" for i in range(4)]
    check_matched(results)


def test_the_command_names_the_line_of_a_bad_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test")
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps(request("a")) + "\n\n" + json.dumps(request("a")) + "\n")
    assert main(["batch", "submit", str(source), "--dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "line 3.custom_id: duplicate custom_id 'a' (also line 1)" in err
    source.write_text("{not json\n")
    assert main(["batch", "submit", str(source), "--dir", str(tmp_path)]) == 2
    assert "in.jsonl, line 1: not JSON" in capsys.readouterr().err
    assert main(["batch", "status", "nope", "--dir", str(tmp_path)]) == 2
    assert "no batch job 'nope'" in capsys.readouterr().err
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    monkeypatch.delenv("ANTHROPIC_AUTH_TOKEN", raising=False)
    source.write_text(json.dumps(request("a")) + "\n")
    assert main(["batch", "submit", str(source), "--dir", str(tmp_path / "new")]) == 2
    assert "set ANTHROPIC_API_KEY" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()  # nothing written
