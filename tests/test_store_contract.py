"""The contract every ledger and blob store backend keeps, written against the interfaces only.

Each backend enters through a harness in ``LEDGERS`` or ``BLOB_STORES``: how to
open it on a store, and (blobs) how to damage it behind its back. A new backend
joins those lists and must pass every test here; the PostgreSQL ledger's harness
takes an empty database per test from the ``postgres`` fixture (tests/pg_server.py). What one backend does in its own way (SQLite's WAL mode, the objects
folder's file names) is tested beside it, in test_ledger.py and test_store.py.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import xxhash

from acpbuild.errors import BudgetExceeded, StoreError
from acpbuild.store import layout
from acpbuild.store.blobs import BlobStore, LinkMode
from acpbuild.store.ledger import Cap, Claim, Ledger, Owner
from acpbuild.store.s3 import S3BlobStore
from acpbuild.store.sqlite import SqliteLedger
from tests.s3_server import isolate

# -- the ledger ---------------------------------------------------------------------------

#: how a test opens a backend's ledger on a store (each call is another process), and the
#: environment a child process needs to open the same one through layout.open_ledger
Opener = tuple[Callable[[Path], Ledger], dict[str, str]]


def _sqlite(request: pytest.FixtureRequest) -> Opener:
    return (lambda root: SqliteLedger(layout.ledger_path(root))), {}


def _postgresql(request: pytest.FixtureRequest) -> Opener:
    url = request.getfixturevalue("postgres").new_database()  # an empty ledger for each test
    from acpbuild.store.postgres import PostgresLedger

    return (lambda root: PostgresLedger(url, local=SqliteLedger(layout.ledger_path(root)))), {layout.LEDGER_VAR: url}


#: each backend: given the test's request, how to open its ledgers
LEDGERS = [
    # the embedded ledger: one SQLite file in the store
    pytest.param(_sqlite, id="sqlite"),
    # the team ledger: a PostgreSQL database, with this machine's outputs in the store's SQLite file
    pytest.param(_postgresql, id="postgresql"),
]


class Ledgers:
    """Ledgers opened on one store, as several processes would share it; closed at teardown."""

    def __init__(self, opener: Opener, root: Path) -> None:
        (self._open, self.env), self._root = opener, root
        self.opened: list[Ledger] = []

    def open(self) -> Ledger:
        ledger = self._open(self._root)
        self.opened.append(ledger)
        return ledger

    def close(self, ledger: Ledger) -> None:
        self.opened.remove(ledger)
        ledger.close()


@pytest.fixture(params=LEDGERS)
def ledgers(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Ledgers]:
    opened = Ledgers(request.param(request), tmp_path / "store")
    yield opened
    for ledger in opened.opened:
        ledger.close()


@pytest.fixture
def ledger(ledgers: Ledgers) -> Ledger:
    return ledgers.open()


def begin(ledger: Ledger, key: str = "k1", **overrides: Any) -> int:
    fields: dict[str, Any] = {
        "recipe": "demo",
        "step": "cover",
        "kind": "text_to_image",
        "provider": "fal",
        "model": "flux-dev",
        "material": '{"kind":"text_to_image"}',
        "estimated_cost": 0.025,
        "draft": False,
    }
    fields.update(overrides)
    return ledger.begin(key, **fields)


def finish(ledger: Ledger, gen_id: int, digest: str = "d" * 32, actual_cost: float | None = 0.0) -> None:
    ledger.finish(gen_id, digest=digest, actual_cost=actual_cost, request_id=None, usage={}, meta={})


def claim(ledger: Ledger, key: str, owner: Owner, lease_s: float = 600.0) -> Claim:
    return ledger.claim(
        key, owner, lease_s=lease_s, recipe="demo", step="cover", provider="fal", model="flux-dev", estimate=0.025
    )


def states(ledger: Ledger) -> dict[int, str]:
    return {gen.id: gen.state for gen in ledger.generations()}


class TestLedger:
    def test_begin_is_seen_by_every_process_before_the_provider_is_called(self, ledgers: Ledgers) -> None:
        # a crash right after begin must leave a row that the next run finds
        gen_id = begin(ledgers.open())
        (seen,) = ledgers.open().generations()
        assert (seen.id, seen.key, seen.state, seen.request_id) == (gen_id, "k1", "submitted", None)
        assert (seen.recipe, seen.step, seen.kind, seen.provider, seen.model) == (
            "demo",
            "cover",
            "text_to_image",
            "fal",
            "flux-dev",
        )
        assert (seen.material, seen.estimated_cost, seen.draft) == ('{"kind":"text_to_image"}', 0.025, 0)
        assert seen.finished is None and seen.created <= time.time()

    def test_a_request_id_is_seen_by_every_process_at_once(self, ledgers: Ledgers) -> None:
        ledger = ledgers.open()
        gen_id = begin(ledger)
        ledger.submitted(gen_id, "req-123")
        pending = ledgers.open().find_resumable("k1")
        assert pending is not None
        assert (pending.id, pending.request_id, pending.state) == (gen_id, "req-123", "submitted")

    def test_finish_makes_the_generation_found_by_key(self, ledgers: Ledgers) -> None:
        ledger = ledgers.open()
        gen_id = begin(ledger)
        assert ledger.find_done("k1") is None
        ledger.submitted(gen_id, "req-123")
        ledger.finish(gen_id, digest="d" * 32, actual_cost=0.03, request_id=None, usage={"images": 1}, meta={"seed": 7})
        done = ledgers.open().find_done("k1")
        assert done is not None
        assert (done.id, done.state, done.digest, done.actual_cost) == (gen_id, "done", "d" * 32, 0.03)
        assert done.finished is not None
        # a finish without a request id keeps the one recorded at submission
        assert done.request_id == "req-123"
        # a finished job is never resumed, and other keys are not affected
        assert ledger.find_resumable("k1") is None
        assert ledger.find_done("k2") is None

    def test_finish_with_a_request_id_records_it(self, ledger: Ledger) -> None:
        # a provider that answers at once gives its id with the result
        gen_id = begin(ledger)
        ledger.finish(gen_id, digest="d" * 32, actual_cost=None, request_id="req-7", usage={}, meta={})
        done = ledger.find_done("k1")
        assert done is not None and done.request_id == "req-7" and done.actual_cost is None

    def test_the_usage_and_meta_a_result_came_with_are_kept_through_to_done(self, ledgers: Ledgers) -> None:
        # a result paid for but not stored keeps what the provider said of it, and the run that
        # stores it later finishes the generation with the same usage and meta
        ledger = ledgers.open()
        usage, meta = {"images": 1, "megapixels": 1.048576}, {"seed": 7, "width": 1024, "height": 1024}
        gen_id = begin(ledger)
        ledger.received(gen_id, actual_cost=0.05, usage=usage, meta=meta, error="read-only store")
        kept = ledgers.open().find_received("k1")
        assert kept is not None and kept.usage is not None and kept.meta is not None
        assert (json.loads(kept.usage), json.loads(kept.meta)) == (usage, meta)
        ledger.finish(gen_id, digest="d" * 32, actual_cost=0.05, request_id=None, usage=usage, meta=meta)
        done = ledgers.open().find_done("k1")
        assert done is not None and done.usage is not None and done.meta is not None
        assert (json.loads(done.usage), json.loads(done.meta)) == (usage, meta)

    def test_find_done_returns_the_latest(self, ledger: Ledger) -> None:
        for digest in ("a" * 32, "b" * 32):
            finish(ledger, begin(ledger), digest=digest)
        done = ledger.find_done("k1")
        assert done is not None and done.digest == "b" * 32

    def test_find_resumable_returns_the_latest(self, ledger: Ledger) -> None:
        for request_id in ("req-1", "req-2"):
            ledger.submitted(begin(ledger), request_id)
        pending = ledger.find_resumable("k1")
        assert pending is not None and pending.request_id == "req-2"

    def test_a_resumable_failure_stays_resumable(self, ledger: Ledger) -> None:
        # a timeout while polling: the job may still finish at the provider, so poll it again
        gen_id = begin(ledger)
        ledger.submitted(gen_id, "req-123")
        ledger.fail(gen_id, "timed out while polling", resumable=True)
        pending = ledger.find_resumable("k1")
        assert pending is not None
        assert (pending.id, pending.request_id, pending.state) == (gen_id, "req-123", "submitted")
        assert (pending.error, pending.finished) == ("timed out while polling", None)
        assert ledger.find_done("k1") is None

    def test_a_final_failure_is_not_resumable(self, ledger: Ledger) -> None:
        gen_id = begin(ledger)
        ledger.submitted(gen_id, "req-123")
        ledger.fail(gen_id, "content policy", resumable=False)
        assert ledger.find_resumable("k1") is None and ledger.find_done("k1") is None
        (seen,) = ledger.generations()
        assert (seen.state, seen.error) == ("failed", "content policy")
        assert seen.finished is not None

    def test_a_submission_without_request_id_is_never_resumable(self, ledger: Ledger) -> None:
        # the process died before the provider answered: there is nothing to poll
        begin(ledger)
        assert ledger.find_resumable("k1") is None

    def test_begin_marks_earlier_submissions_that_never_got_a_request_id(self, ledger: Ledger) -> None:
        lost = begin(ledger)  # sent, then its run died before the provider gave it an id
        free = begin(ledger, estimated_cost=0.0)  # a free attempt that died: nothing to doubt
        polled = begin(ledger)  # got an id, then died while polling
        ledger.submitted(polled, "req-9")
        other = begin(ledger, key="k2")  # another generation altogether
        finished = begin(ledger)
        finish(ledger, finished)

        again = begin(ledger)

        assert states(ledger) == {
            lost: "possibly_billed",  # it may have been billed: it still counts, at its estimate
            free: "abandoned",
            polled: "submitted",
            other: "submitted",
            finished: "done",
            again: "submitted",
        }
        assert next(g for g in ledger.generations() if g.id == lost).finished is not None
        # the job with a request id is still the one to resume
        pending = ledger.find_resumable("k1")
        assert pending is not None and pending.id == polled

    # -- claims: one run at a time buys a key ----------------------------------------------
    def test_a_claim_is_held_against_other_runs_until_released(self, ledgers: Ledgers) -> None:
        one, two = ledgers.open(), ledgers.open()
        first, second = Owner("run-a", socket.gethostname(), os.getpid()), Owner("run-b", "elsewhere", 1)
        assert claim(one, "k1", first) == Claim()
        assert claim(one, "k1", first) == Claim()  # claiming again is renewing
        held = claim(two, "k1", second)
        assert held.held_by == first and held.step == "cover"
        assert claim(two, "k2", second) == Claim()  # another key is free
        assert sorted((k, o.run_id) for k, o, _, _ in one.claims()) == [("k1", "run-a"), ("k2", "run-b")]
        two.release("k1", second)  # not its claim: nothing happens
        assert claim(two, "k1", second).held_by == first
        one.release("k1", first)
        assert claim(two, "k1", second) == Claim()

    def test_the_claims_listing_names_each_holder_and_its_step(self, ledgers: Ledgers) -> None:
        one, two = ledgers.open(), ledgers.open()
        first, second = Owner("run-a", "build-01", 4242), Owner("run-b", "build-02", 77)
        before = time.time()
        claim(one, "k2", second, lease_s=600.0)
        claim(one, "k1", first, lease_s=600.0)
        listed = two.claims()
        assert [(key, owner, step) for key, owner, _, step in listed] == [
            ("k1", first, "cover"),
            ("k2", second, "cover"),
        ]
        assert all(before + 600.0 <= lease <= time.time() + 600.0 for _, _, lease, _ in listed)

    def test_a_claim_whose_lease_ran_out_is_taken_over(self, ledgers: Ledgers) -> None:
        one, two = ledgers.open(), ledgers.open()
        first, second = Owner("run-a", "elsewhere", 1), Owner("run-b", "elsewhere", 2)
        assert claim(one, "k1", first, lease_s=0.05) == Claim()
        time.sleep(0.1)
        assert claim(two, "k1", second) == Claim(taken_from=first)
        assert claim(one, "k1", first).held_by == second

    def test_a_held_claim_says_how_long_its_lease_has_left(self, ledgers: Ledgers) -> None:
        # a waiting run wakes when the holder's lease would lapse, not a third of its own lease later
        one, two = ledgers.open(), ledgers.open()
        first, second = Owner("run-a", "elsewhere", 1), Owner("run-b", "elsewhere", 2)
        claim(one, "k1", first, lease_s=30.0)
        held = claim(two, "k1", second)
        assert held.held_by == first and held.lease_left is not None and 25.0 < held.lease_left <= 30.0
        assert claim(one, "k1", first).lease_left is None  # ours: nothing to wait for

    def test_renewing_keeps_a_claim_alive(self, ledgers: Ledgers) -> None:
        one, two = ledgers.open(), ledgers.open()
        first, second = Owner("run-a", "elsewhere", 1), Owner("run-b", "elsewhere", 2)
        claim(one, "k1", first, lease_s=0.2)
        one.renew(first, 60.0)
        time.sleep(0.3)
        assert claim(two, "k1", second).held_by == first

    def test_a_claim_of_a_dead_process_on_this_host_is_taken_over_at_once(self, ledgers: Ledgers) -> None:
        dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
        gone = Owner("run-a", socket.gethostname(), int(dead.stdout))
        claim(ledgers.open(), "k1", gone, lease_s=3600)
        me = Owner("run-b", socket.gethostname(), os.getpid())
        assert claim(ledgers.open(), "k1", me) == Claim(taken_from=gone)

    def test_finishing_a_generation_releases_its_claim_with_it(self, ledgers: Ledgers) -> None:
        one, two = ledgers.open(), ledgers.open()
        first, second = Owner("run-a", "elsewhere", 1), Owner("run-b", "elsewhere", 2)
        claim(one, "k1", first)
        gen_id = begin(one)
        one.finish(gen_id, digest="d" * 32, actual_cost=0.02, request_id=None, usage={}, meta={}, owner=first)
        assert claim(two, "k1", second) == Claim()
        assert two.find_done("k1") is not None

    def test_claims_from_many_processes_at_once_give_each_key_one_owner(self, tmp_path: Path, ledgers: Ledgers) -> None:
        # 4 processes race for 30 keys through their own connections: every key has exactly one winner
        ledgers.open().close()  # the schema exists before the race
        code = (
            "import sys, socket, os\n"
            "from pathlib import Path\n"
            "from acpbuild.store import layout\n"
            "from acpbuild.store.ledger import Owner\n"
            "ledger = layout.open_ledger(Path(sys.argv[1]))\n"
            "me = Owner(sys.argv[2], 'elsewhere', 1)\n"
            "for i in range(30):\n"
            "    got = ledger.claim(f'k{i}', me, lease_s=600, recipe='r', step='s', provider='fal', model='m', estimate=0)\n"
            "    print(i, 'mine' if got.held_by is None else 'held')\n"
        )
        root = tmp_path / "store"
        env = {**os.environ, **ledgers.env}  # a shared backend: the children open it as a run would
        children = [
            subprocess.Popen(
                [sys.executable, "-c", code, str(root), f"run-{n}"], stdout=subprocess.PIPE, text=True, env=env
            )
            for n in range(4)
        ]
        wins: dict[str, int] = {}
        for child in children:
            out, _ = child.communicate(timeout=120)
            assert child.returncode == 0
            for line in out.splitlines():
                key, verdict = line.split()
                wins[key] = wins.get(key, 0) + (verdict == "mine")
        assert wins == {str(i): 1 for i in range(30)}
        assert len(ledgers.open().claims()) == 30  # and they raced in the ledger this test reads

    def test_wait_released_wakes_soon_after_another_process_releases(self, ledgers: Ledgers) -> None:
        waiter, holder = ledgers.open(), ledgers.open()
        first = Owner("run-a", "elsewhere", 1)
        claim(holder, "k1", first)
        releasing = threading.Timer(0.5, holder.release, ("k1", first))
        releasing.start()
        started = time.monotonic()
        waiter.wait_released("k1", 30.0)
        waited = time.monotonic() - started
        releasing.join()
        assert waited < 10.0
        assert claim(waiter, "k1", Owner("run-b", "elsewhere", 2)) == Claim()

    def test_wait_released_gives_up_at_its_timeout(self, ledgers: Ledgers) -> None:
        waiter, holder = ledgers.open(), ledgers.open()
        first = Owner("run-a", "elsewhere", 1)
        claim(holder, "k1", first)
        started = time.monotonic()
        waiter.wait_released("k1", 0.5)
        assert 0.45 <= time.monotonic() - started < 5.0
        assert claim(waiter, "k1", Owner("run-b", "elsewhere", 2)).held_by == first  # still held
        started = time.monotonic()
        waiter.wait_released("free", 30.0)  # nobody holds it: no wait at all
        assert time.monotonic() - started < 5.0

    def test_describe_names_the_backend(self, ledger: Ledger) -> None:
        assert "ledger at" in ledger.describe()

    # -- what may have been paid -----------------------------------------------------------
    def test_possibly_billed_and_received_attempts_count_as_spend(self, ledger: Ledger) -> None:
        since = time.time() - 1
        lost = begin(ledger, estimated_cost=0.5)
        ledger.fail(lost, "the connection broke after sending", resumable=False, billed=True)
        refused = begin(ledger, key="k2", estimated_cost=0.25)
        ledger.fail(refused, "content policy", resumable=False)
        kept = begin(ledger, key="k3", estimated_cost=0.25)
        ledger.received(kept, actual_cost=0.125, usage={}, meta={}, error="read-only store")
        assert states(ledger) == {lost: "possibly_billed", refused: "failed", kept: "received"}
        assert ledger.spent_since(since) == pytest.approx(0.5 + 0.125)
        found = ledger.find_received("k3")
        assert found is not None and found.id == kept and found.actual_cost == 0.125
        assert ledger.find_received("k1") is None

    def test_paid_attempts_of_runs_that_are_gone_are_marked_lost(self, ledgers: Ledgers) -> None:
        ledger = ledgers.open()
        alive, gone = Owner("run-a", "elsewhere", 1), Owner("run-b", "elsewhere", 2)
        claim(ledger, "k1", alive)
        running = begin(ledger)  # its run holds the claim: still in flight
        claim(ledger, "k2", gone, lease_s=0.01)
        died = begin(ledger, key="k2")  # its claim ran out: the run is gone
        orphan = begin(ledger, key="k3")  # no claim at all
        free = begin(ledger, key="k4", estimated_cost=0.0)  # free: nothing to doubt
        polled = begin(ledger, key="k5")
        ledger.submitted(polled, "req-1")  # resumable, not lost
        time.sleep(0.05)
        assert ledgers.open().mark_lost("demo") == 2
        assert states(ledger) == {
            running: "submitted",
            died: "possibly_billed",
            orphan: "possibly_billed",
            free: "submitted",
            polled: "submitted",
        }

    def test_a_paid_attempt_claimed_by_a_dead_process_of_this_host_is_lost_at_once(self, ledgers: Ledgers) -> None:
        ledger = ledgers.open()
        # both leases run for an hour: only the process table tells the dead run from the live one
        claim(ledger, "k1", Owner("run-a", socket.gethostname(), _dead_pid()), lease_s=3600)
        died = begin(ledger)
        claim(ledger, "k2", Owner("run-b", socket.gethostname(), os.getpid()), lease_s=3600)
        running = begin(ledger, key="k2")
        assert ledgers.open().mark_lost("demo") == 1
        assert states(ledger) == {died: "possibly_billed", running: "submitted"}

    def test_doubts_are_listed_and_warned_about_once(self, ledger: Ledger) -> None:
        lost = begin(ledger)
        ledger.fail(lost, "answer lost", resumable=False, billed=True)
        begin(ledger, key="k2", recipe="other")
        assert [g.id for g in ledger.doubts("demo")] == [lost]
        assert [g.id for g in ledger.doubts("demo", unwarned=True)] == [lost]
        assert ledger.doubts("demo", unwarned=True) == []  # warned once
        assert [g.id for g in ledger.doubts("demo")] == [lost]  # still counted
        assert [(g.id, g.state) for g in ledger.abandon("demo", "cover")] == [(lost, "possibly_billed")]
        assert ledger.doubts("demo") == []

    def test_rows_survive_reopening(self, ledgers: Ledgers) -> None:
        first = ledgers.open()
        gen_id = begin(first)
        first.submitted(gen_id, "req-123")
        ledgers.close(first)
        pending = ledgers.open().find_resumable("k1")
        assert pending is not None and pending.id == gen_id

    def test_abandon_gives_up_the_steps_kept_jobs(self, ledger: Ledger) -> None:
        kept = begin(ledger)
        ledger.submitted(kept, "req-1")
        ledger.fail(kept, "timed out while polling", resumable=True)
        unsent = begin(ledger, key="k2")  # no request id: nothing to give back
        done = begin(ledger, key="k3")
        finish(ledger, done)
        elsewhere = begin(ledger, key="k4", step="title")
        ledger.submitted(elsewhere, "req-4")

        assert [(g.id, g.request_id) for g in ledger.abandon("demo", "cover")] == [(kept, "req-1"), (unsent, None)]

        assert states(ledger) == {kept: "abandoned", unsent: "abandoned", done: "done", elsewhere: "submitted"}
        given_up = next(g for g in ledger.generations() if g.id == kept)
        assert given_up.finished is not None
        assert given_up.error == "timed out while polling; abandoned by the user"
        assert ledger.find_resumable("k1") is None
        assert ledger.abandon("demo", "cover") == []  # nothing left to give up
        assert ledger.abandon("other-recipe", "title") == []

    def test_spent_since_counts_finished_at_cost_and_in_flight_at_estimate(self, ledger: Ledger) -> None:
        finish(ledger, begin(ledger, "a", estimated_cost=0.5), actual_cost=0.25)  # its actual cost
        finish(ledger, begin(ledger, "b", estimated_cost=0.125), actual_cost=None)  # no actual: its estimate
        ledger.submitted(begin(ledger, "c", estimated_cost=1.0), "req-c")  # in flight: its estimate
        ledger.fail(begin(ledger, "d", estimated_cost=8.0), "refused", resumable=False)  # never billed
        finish(ledger, begin(ledger, "e", estimated_cost=16.0, draft=True), actual_cost=16.0)  # drafts are free
        assert ledger.spent_since(0.0) == pytest.approx(0.25 + 0.125 + 1.0)
        assert ledger.spent_since(time.time() + 60) == 0.0

    def test_spent_since_leaves_out_abandoned_jobs(self, ledger: Ledger) -> None:
        ledger.submitted(begin(ledger, estimated_cost=1.0), "req-1")
        assert ledger.spent_since(0.0) == pytest.approx(1.0)
        ledger.abandon("demo", "cover")
        assert ledger.spent_since(0.0) == 0.0

    def test_begin_refuses_a_call_past_the_cap_whoever_spent_it(self, ledgers: Ledgers) -> None:
        cap = Cap("the monthly cap of $0.10", 0.10, since=0.0)
        first, second = ledgers.open(), ledgers.open()  # two processes
        begin(first, "k1", step="a", estimated_cost=0.06, cap=cap)
        with pytest.raises(BudgetExceeded, match="already spent or in flight") as refused:
            begin(second, "k2", step="b", estimated_cost=0.05, cap=cap)
        assert refused.value.usd == 0.05
        assert [g.key for g in second.generations()] == ["k1"]  # the refused call left no row
        begin(second, "k3", step="c", estimated_cost=0.04, cap=cap)  # exactly fills it
        assert second.spent_since(0.0) == pytest.approx(0.10)
        assert first.spent_since(0.0) == pytest.approx(0.10)

    def test_a_call_with_no_estimate_takes_nothing_from_the_cap(self, ledger: Ledger) -> None:
        cap = Cap("the monthly cap of $0.10", 0.10, since=0.0)
        filled = begin(ledger, "k1", estimated_cost=0.10, cap=cap)
        begin(ledger, "k2", estimated_cost=None, cap=cap)  # the cap is full, and this adds nothing to it
        finish(ledger, filled, actual_cost=0.125)  # it cost more than its estimate: the cap is overspent
        with pytest.raises(BudgetExceeded) as refused:
            begin(ledger, "k3", estimated_cost=None, cap=cap)
        assert refused.value.usd == 0.0  # what the refused call would have cost, as far as anyone knows
        assert [g.key for g in ledger.generations()] == ["k1", "k2"]

    def test_the_cap_counts_only_spend_since_it_began(self, ledger: Ledger) -> None:
        finish(ledger, begin(ledger, "old", estimated_cost=5.0), actual_cost=5.0)
        time.sleep(0.01)
        cap = Cap("this month's cap", 1.0, since=time.time())  # the month began after "old" finished
        begin(ledger, "new", estimated_cost=0.5, cap=cap)
        with pytest.raises(BudgetExceeded):
            begin(ledger, "newer", estimated_cost=0.75, cap=cap)

    def test_generations_since_a_moment_oldest_first(self, ledger: Ledger) -> None:
        ids = [begin(ledger, key) for key in ("k1", "k2", "k3")]
        assert [g.id for g in ledger.generations()] == ids
        assert [g.id for g in ledger.generations(since=0.0)] == ids
        assert ledger.generations(since=time.time() + 60) == []

    def test_restores_record_what_reuse_saved(self, ledger: Ledger) -> None:
        gen_id = begin(ledger)
        finish(ledger, gen_id, actual_cost=0.03)
        done = ledger.find_done("k1")
        assert done is not None
        before = time.time()
        ledger.restored(done, recipe="demo", step="cover")
        ledger.restored(done, recipe="other", step="poster")
        restores = ledger.restores()
        assert [(g.id, recipe, step, saved) for g, recipe, step, saved, _ in restores] == [
            (gen_id, "demo", "cover", pytest.approx(0.03)),
            (gen_id, "other", "poster", pytest.approx(0.03)),
        ]
        assert all(before - 1 <= when <= time.time() + 1 for *_, when in restores)
        assert ledger.restores(since=time.time() + 60) == []

    def test_a_restore_of_a_generation_without_a_cost_saved_nothing(self, ledger: Ledger) -> None:
        finish(ledger, begin(ledger), actual_cost=None)
        done = ledger.find_done("k1")
        assert done is not None
        ledger.restored(done, recipe="demo", step="cover")
        ((_, _, _, saved, _),) = ledger.restores()
        assert saved == 0.0

    def test_outputs_are_recorded_replaced_listed_and_dropped(self, ledger: Ledger, tmp_path: Path) -> None:
        cover, title = tmp_path / "out" / "cover.png", tmp_path / "out" / "title.txt"
        assert ledger.output(cover) is None
        ledger.set_output(cover, key="k1", digest="a" * 32, material="{}", recipe="demo", step="cover")
        ledger.set_output(title, key="k2", digest="b" * 32, material="{}", recipe="demo", step="title")
        ledger.set_output(tmp_path / "x.png", key="k3", digest="c" * 32, material="{}", recipe="other", step="x")
        ledger.set_output(cover, key="k4", digest="d" * 32, material='{"v":2}', recipe="demo", step="cover")
        record = ledger.output(cover)
        assert record is not None
        assert (record.path, record.key, record.digest, record.material, record.recipe, record.step) == (
            str(cover),
            "k4",
            "d" * 32,
            '{"v":2}',
            "demo",
            "cover",
        )
        assert sorted(r.path for r in ledger.outputs_of("demo")) == sorted([str(cover), str(title)])
        ledger.drop_output(cover)
        ledger.drop_output(cover)  # forgetting twice is no error
        assert ledger.output(cover) is None
        assert [r.path for r in ledger.outputs_of("demo")] == [str(title)]
        assert ledger.outputs_of("nobody") == []

    def test_the_outputs_below_a_folder_come_in_one_query_whoever_made_them(self, ledgers: Ledgers) -> None:
        ledger = ledgers.open()
        for n, path in enumerate(["/p/out/a.png", "/p/out/b/c.txt", "/p/out0/d.png", "/p/outer.png", "/q/out/e.png"]):
            ledger.set_output(Path(path), key=f"k{n}", digest=f"{n}" * 32, material="{}", recipe=f"r{n % 2}", step="s")
        below = ledgers.open().outputs_below("/p/out")
        # the folder and everything under it, of any recipe; never a sibling whose name only starts alike
        assert sorted((r.path, r.key, r.recipe) for r in below) == [("/p/out/a.png", "k0", "r0"), ("/p/out/b/c.txt", "k1", "r1")]
        assert [r.path for r in ledger.outputs_below("/p/out/b/")] == ["/p/out/b/c.txt"]
        assert ledger.outputs_below("/nowhere") == []

    def test_file_digests_are_remembered_and_replaced(self, ledgers: Ledgers) -> None:
        ledger = ledgers.open()
        assert ledger.load_digest("a.png") is None
        ledger.save_digest("a.png", (1, 2, 3, 4, 5), "one")
        ledger.save_digest("a.png", (1, 2, 3, 6, 7), "two")
        assert ledgers.open().load_digest("a.png") == ((1, 2, 3, 6, 7), "two")
        assert ledger.load_digest("b.png") is None

    def test_the_digests_below_a_folder_come_in_one_query(self, ledgers: Ledgers) -> None:
        ledger = ledgers.open()
        for n, path in enumerate(["/p/a.png", "/p/out/b.txt", "/p/out/c/d.txt", "/p0/e.png", "/p.png", "/q/f.png"]):
            ledger.save_digest(path, (1, n, 3, 4, 5), f"digest{n}")
        below = ledgers.open().load_digests("/p")
        # the folder and everything under it; never a sibling whose name only starts alike
        assert below == {
            "/p/a.png": ((1, 0, 3, 4, 5), "digest0"),
            "/p/out/b.txt": ((1, 1, 3, 4, 5), "digest1"),
            "/p/out/c/d.txt": ((1, 2, 3, 4, 5), "digest2"),
        }
        assert ledger.load_digests("/p/out/") == {k: v for k, v in below.items() if k.startswith("/p/out/")}
        assert ledger.load_digests("/nowhere") == {}


# -- the blob store -----------------------------------------------------------------------

DATA = b"\x89PNG not really, but bytes all the same\n" * 100


@dataclass(frozen=True)
class BlobBackend:
    """How the contract opens a backend, and damages it behind its back."""

    open: Callable[[Path, LinkMode], BlobStore]
    #: overwrite a blob's bytes without the store knowing
    corrupt: Callable[[BlobStore, str, bytes], None]
    #: a staging file as a process of this machine that has since died left it
    orphan: Callable[[BlobStore], Path]


def _local_corrupt(store: BlobStore, digest: str, data: bytes) -> None:
    blob = store.path(digest)
    os.chmod(blob, 0o644)  # blobs are read-only
    blob.write_bytes(data)
    os.chmod(blob, 0o444)


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    return int(done.stdout)


def _local_orphan(store: BlobStore) -> Path:
    live = store.staging(".png")  # <pid>@<host>@<unique><suffix>: put a dead pid in its place
    orphan = live.with_name(f"{_dead_pid()}@{live.name.split('@', 1)[1]}")
    orphan.write_bytes(b"half a picture")
    return orphan


def _s3(request: pytest.FixtureRequest) -> BlobBackend:
    """The S3 store on a fresh bucket of the session's moto server, each root its own machine's cache."""
    server = request.getfixturevalue("s3_server")
    isolate(request.getfixturevalue("monkeypatch"))
    env = {**server.env, layout.REMOTE_VAR: f"s3://{server.new_bucket()}/acp"}

    def corrupt(store: BlobStore, digest: str, data: bytes) -> None:
        # both copies: the local cache's, and the bucket's behind it
        assert isinstance(store, S3BlobStore)
        _local_corrupt(store, digest, data)
        store.client.put_object(Bucket=store.bucket, Key=store.key(digest), Body=data)

    return BlobBackend(lambda root, link: layout.open_blobs(root, link, env), corrupt, _local_orphan)


#: each backend: a harness, or how to make one from fixtures (a backend that needs a server)
BLOB_STORES = [
    # the embedded store: a folder of files named by digest
    pytest.param(BlobBackend(layout.open_blobs, _local_corrupt, _local_orphan), id="local"),
    # a bucket on a local S3 server, with the local store in front as its cache
    pytest.param(_s3, id="s3"),
]

# how outputs are made from blobs
LINK_MODES: list[LinkMode] = [
    # a private copy the user may edit
    "copy",
    # a hard link sharing the blob's bytes, for large media
    "hardlink",
]


@pytest.fixture(params=BLOB_STORES)
def backend(request: pytest.FixtureRequest) -> BlobBackend:
    found: BlobBackend | Callable[[pytest.FixtureRequest], BlobBackend] = request.param
    return found if isinstance(found, BlobBackend) else found(request)


@pytest.fixture
def store(backend: BlobBackend, tmp_path: Path) -> BlobStore:
    return backend.open(tmp_path / "store", "copy")


def staged(store: BlobStore, data: bytes = DATA, suffix: str = ".png") -> Path:
    """A staging file holding ``data``, as a provider would leave it."""
    path = store.staging(suffix)
    path.write_bytes(data)
    return path


class TestBlobStore:
    def test_put_moves_the_staging_file_in_under_its_digest(self, store: BlobStore) -> None:
        src = staged(store)
        digest = store.put(src)
        assert digest == xxhash.xxh3_128_hexdigest(DATA)
        assert not src.exists()
        assert store.has(digest)
        assert store.get(digest).read_bytes() == DATA

    def test_get_gives_the_local_path_of_an_intact_blob(self, store: BlobStore) -> None:
        digest = store.put(staged(store))
        assert store.get(digest) == store.path(digest)
        assert store.verify(digest) == store.path(digest)

    def test_read_text_decodes_the_blob(self, store: BlobStore) -> None:
        digest = store.put(staged(store, "a caption, naïve\n".encode(), ".txt"))
        assert store.read_text(digest) == "a caption, naïve\n"

    def test_put_of_known_bytes_keeps_one_blob(self, store: BlobStore) -> None:
        first = store.put(staged(store))
        second_src = staged(store)
        assert store.put(second_src) == first
        assert not second_src.exists()
        assert store.size() == len(DATA)

    def test_size_counts_every_blob_once(self, store: BlobStore) -> None:
        assert store.size() == 0
        store.put(staged(store, b"one"))
        store.put(staged(store, b"three"))
        store.put(staged(store, b"one"))
        assert store.size() == len(b"one") + len(b"three")

    def test_put_over_a_corrupt_blob_repairs_it(self, backend: BlobBackend, store: BlobStore) -> None:
        # fresh bytes that hash to a corrupt blob's digest must not be thrown away
        digest = store.put(staged(store))
        backend.corrupt(store, digest, b"bit rot")
        assert store.put(staged(store)) == digest
        assert store.get(digest).read_bytes() == DATA

    @pytest.mark.parametrize(
        "reader",
        [
            # checked on its own
            "get",
            # the older name of get
            "verify",
            # checked on the way to an output, which must then not be written
            "materialise",
            # checked on the way to a provider reading it as text
            "read_text",
        ],
    )
    def test_a_corrupt_blob_is_refused_and_set_aside(
        self, backend: BlobBackend, store: BlobStore, tmp_path: Path, reader: str
    ) -> None:
        digest = store.put(staged(store))
        backend.corrupt(store, digest, b"bit rot")
        dest = tmp_path / "out" / "cover.png"
        with pytest.raises(StoreError, match="corrupt"):
            if reader == "materialise":
                store.materialise(digest, dest)
            else:
                getattr(store, reader)(digest)
        assert not store.has(digest)
        assert not dest.exists()
        # set aside, it is now simply missing: the next run generates it again
        with pytest.raises(StoreError, match="missing"):
            store.get(digest)

    def test_a_missing_blob_is_a_store_error(self, store: BlobStore, tmp_path: Path) -> None:
        assert not store.has("ab" * 16)
        with pytest.raises(StoreError, match="missing"):
            store.get("ab" * 16)
        with pytest.raises(StoreError, match="missing"):
            store.materialise("ab" * 16, tmp_path / "out.png")
        assert not (tmp_path / "out.png").exists()

    @pytest.mark.parametrize("link", LINK_MODES)
    def test_materialise_gives_the_blob_bytes(self, backend: BlobBackend, tmp_path: Path, link: LinkMode) -> None:
        store = backend.open(tmp_path / "store", link)
        digest = store.put(staged(store))
        dest = tmp_path / "out" / "nested" / "cover.png"
        store.materialise(digest, dest)
        assert dest.read_bytes() == DATA

    @pytest.mark.parametrize("link", LINK_MODES)
    def test_materialise_replaces_an_existing_output_and_leaves_no_temporary_file(
        self, backend: BlobBackend, tmp_path: Path, link: LinkMode
    ) -> None:
        store = backend.open(tmp_path / "store", link)
        digest = store.put(staged(store))
        out = tmp_path / "out"
        out.mkdir()
        dest = out / "cover.png"
        dest.write_bytes(b"an older cover")
        store.materialise(digest, dest)
        assert dest.read_bytes() == DATA
        assert [p.name for p in out.iterdir()] == ["cover.png"]
        # and again over its own previous result (in hardlink mode both names may link one file)
        store.materialise(digest, dest)
        assert dest.read_bytes() == DATA
        assert [p.name for p in out.iterdir()] == ["cover.png"]

    def test_materialise_that_cannot_replace_leaves_no_temporary_file(self, store: BlobStore, tmp_path: Path) -> None:
        # a directory where the output should go: the final rename fails
        digest = store.put(staged(store))
        out = tmp_path / "out"
        (out / "cover.png").mkdir(parents=True)
        with pytest.raises(StoreError, match="cannot write"):
            store.materialise(digest, out / "cover.png")
        assert [p.name for p in out.iterdir()] == ["cover.png"]
        assert (out / "cover.png").is_dir()

    def test_staging_paths_are_fresh_and_keep_their_suffix(self, store: BlobStore) -> None:
        paths = [store.staging(".mp4") for _ in range(3)]
        assert len(set(paths)) == 3
        assert all(p.suffix == ".mp4" and not p.exists() for p in paths)

    def test_sweep_removes_what_dead_processes_left_and_keeps_live_work(
        self, backend: BlobBackend, store: BlobStore
    ) -> None:
        mine = staged(store, b"in progress")  # this process is alive: its file stays
        orphan = backend.orphan(store)
        assert store.sweep() == 1
        assert mine.read_bytes() == b"in progress" and not orphan.exists()
        assert store.sweep() == 0

    def test_sweep_keeps_results_kept_for_the_next_run_and_unowned_files_for_a_day(
        self, backend: BlobBackend, store: BlobStore
    ) -> None:
        kept = store.keep(staged(store, b"paid for, not stored yet"), "k1")
        folder = kept.parent
        # files an older acpbuild left, with no owner in the name: a fresh one stays, a stale one goes
        fresh, stale = folder / "legacy-fresh.png", folder / "legacy-stale.png"
        fresh.write_bytes(b"?")
        stale.write_bytes(b"?")
        two_days_ago = time.time() - 2 * 24 * 3600
        # a kept result has no owner in its name either, and stays however old it is
        for path in (stale, kept):
            os.utime(path, (two_days_ago, two_days_ago))
        orphans = [backend.orphan(store) for _ in range(3)]
        assert store.sweep() == 4
        assert store.kept("k1") == kept and kept.read_bytes() == b"paid for, not stored yet"
        assert store.kept("k2") is None
        assert fresh.exists() and not stale.exists()
        assert not any(orphan.exists() for orphan in orphans)
