"""``tidyctx batch submit FILE.jsonl | status JOB | results JOB``: a batch job from the shell.

The client is ``anthropic.Anthropic()``: it reads ``ANTHROPIC_API_KEY`` (and
``ANTHROPIC_BASE_URL``) from the environment.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

from tidyctx._pipeline import Transform
from tidyctx.batch._job import DEFAULT_DIR, BatchJob, JobStatus
from tidyctx.batch._prepare import MAX_BYTES, MAX_REQUESTS, BatchError, JobBusy

__all__ = ["add_batch_command", "batch_main"]

_PIPELINES = ("off", "defaults")


def add_batch_command(sub: Any) -> None:
    batch = sub.add_parser(
        "batch",
        help="send many requests through the Message Batches API (50%% off), resumable",
        description="Run a Message Batches job: submit FILE.jsonl ({custom_id, params} per "
        "line), check it, read its results. The job's files live in --dir; a job stopped at "
        "any point goes on where it was with `status` or `results --wait`, sending nothing "
        "twice. Uses ANTHROPIC_API_KEY (and ANTHROPIC_BASE_URL) from the environment.",
    )
    steps = batch.add_subparsers(dest="batch_command", required=True)
    submit = steps.add_parser(
        "submit",
        help="start a job from a JSONL file of {custom_id, params} requests",
        description="Check the requests, run each through the pipeline, split them into "
        "batches within the API's limits and submit them. Prints the job's name.",
    )
    submit.add_argument("file", help="a .jsonl file, one {custom_id, params} request a line")
    submit.add_argument("--job", help="the job's name (default: a new one)")
    submit.add_argument(
        "--pipeline",
        choices=_PIPELINES,
        default="off",
        help="off: the requests as given (default); defaults: through tc.defaults() (order, "
        "trim...), its cache step left to --breakpoints",
    )
    submit.add_argument(
        "--keep-breakpoints",
        action="store_true",
        help="leave the requests' cache_control markers as they are, instead of placing "
        "1-hour breakpoints where the requests share a prefix",
    )
    submit.add_argument("--max-requests", type=int, default=MAX_REQUESTS, metavar="N")
    submit.add_argument("--max-bytes", type=int, default=MAX_BYTES, metavar="N")
    submit.add_argument("--wait", action="store_true", help="wait until every result is in")
    status = steps.add_parser(
        "status",
        help="check a job's batches once, save what ended, and print where it stands",
        description="Check each open batch of JOB once, save the results of those that ended "
        "(submitting the one retry of their errored and expired requests), and print the job's "
        "counts, cost and batches.",
    )
    status.add_argument("job", help="the job's name (printed by submit)")
    status.add_argument("--json", action="store_true", help="print the status as JSON")
    results = steps.add_parser(
        "results",
        help="print a job's results as JSON lines",
        description="Print the saved results of JOB, one {custom_id, attempt, batch_id, result} "
        "a line. Exit status 1 (after printing those saved) while some are still missing.",
    )
    results.add_argument("job", help="the job's name (printed by submit)")
    results.add_argument("--wait", action="store_true", help="first run the job to its end")
    for p in (submit, status, results):
        p.add_argument(
            "--dir", default=str(DEFAULT_DIR), help=f"the job's files (default {DEFAULT_DIR})"
        )
        p.add_argument("--ledger", metavar="PATH", help="append a ledger row per result")
        p.add_argument(
            "--poll-interval", type=float, default=10.0, metavar="S", help="first wait (s)"
        )
        p.add_argument(
            "--max-interval", type=float, default=120.0, metavar="S", help="longest wait (s)"
        )


def _pipeline(name: str) -> list[Transform]:
    if name == "off":
        return []
    from tidyctx.transforms import defaults

    return defaults(cache=False)


def _read_requests(path: str) -> tuple[list[Any], list[int]]:
    """The requests of a JSONL file, and the line number of each."""
    items: list[Any] = []
    lines: list[int] = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                items.append(json.loads(line))
            except ValueError as err:
                raise BatchError(f"{path}, line {number}: not JSON ({err})") from None
            lines.append(number)
    return items, lines


def _client() -> Any:
    import anthropic

    if not (os.environ.get("ANTHROPIC_API_KEY") or os.environ.get("ANTHROPIC_AUTH_TOKEN")):
        raise BatchError("set ANTHROPIC_API_KEY: the batches are sent with your API key")
    return anthropic.Anthropic()


def _print_status(status: JobStatus, as_json: bool) -> None:
    if as_json:
        print(json.dumps(status.as_dict(), indent=2))
    else:
        print(status)


def batch_main(args: argparse.Namespace) -> int:
    """Run ``tidyctx batch ...``; the exit status."""
    import anthropic

    command = f"batch {args.batch_command}"
    options = {
        "dir": args.dir,
        "ledger": args.ledger,
        "poll_interval": args.poll_interval,
        "max_interval": args.max_interval,
    }
    lines: list[int] = []
    try:
        if args.batch_command == "submit":
            client = _client()  # before any file is written
            items, lines = _read_requests(args.file)
            job = BatchJob(
                items,
                job=args.job,
                pipeline=_pipeline(args.pipeline),
                breakpoints="keep" if args.keep_breakpoints else "shared",
                max_requests=args.max_requests,
                max_bytes=args.max_bytes,
                **options,
            )
            status = job.run(client, wait=args.wait)
            print(f"job {job.job} in {Path(args.dir)}")
            _print_status(status, as_json=False)
            return 0
        job = BatchJob.open(args.job, **options)
        if args.batch_command == "status":
            try:
                status = job.run(_client(), wait=False)
            except JobBusy as err:  # another process runs it: show its files as they are
                print(f"tidyctx {command}: {err}; showing its files", file=sys.stderr)
                status = job.status()
            _print_status(status, args.json)
            return 0
        status = job.run(_client()) if args.wait else job.status()
        for row in job.results():
            sys.stdout.write(json.dumps(row, ensure_ascii=False) + "\n")
        sys.stdout.flush()
        if not status.complete:
            print(
                f"tidyctx {command}: job {job.job}: {status.requests - status.done:,} of "
                f"{status.requests:,} results still missing; `tidyctx batch status {job.job}` "
                "moves it on, `results --wait` waits for them",
                file=sys.stderr,
            )
            return 1
        return 0
    except BatchError as err:
        text = str(err)
        if lines:  # requests[i] is line lines[i] of the file
            text = re.sub(r"requests\[(\d+)\]", lambda m: f"line {lines[int(m[1])]}", text)
        print(f"tidyctx {command}: {text}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as err:
        print(f"tidyctx {command}: {err}", file=sys.stderr)
        return 2
    except anthropic.APIError as err:
        print(f"tidyctx {command}: the API answered: {err}", file=sys.stderr)
        return 2
