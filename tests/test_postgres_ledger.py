"""The PostgreSQL ledger's own ways: reaching the server, the team's cap across machines,
NOTIFY waking waiters, and what it keeps on this machine.

What every ledger must do is in test_store_contract.py, which runs against this
backend too; these tests need the ``postgres`` fixture's server.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from acpbuild.errors import StoreError, StoreUnreachable
from acpbuild.store import layout
from acpbuild.store.ledger import Owner
from acpbuild.store.postgres import PostgresLedger
from acpbuild.store.sqlite import SqliteLedger
from tests.pg_server import PASSWORD, PostgresServer


@pytest.fixture
def url(postgres: PostgresServer) -> str:
    return postgres.new_database()


@pytest.fixture
def ledger(url: str, tmp_path: Path) -> Iterator[PostgresLedger]:
    opened = PostgresLedger(url, local=SqliteLedger(layout.ledger_path(tmp_path / "store")))
    yield opened
    opened.close()


def child_env(url: str) -> dict[str, str]:
    """The environment of a child process that opens the ledger as a run would."""
    return {**os.environ, layout.LEDGER_VAR: url}


def begin(ledger: PostgresLedger, key: str, **overrides: object) -> int:
    fields: dict[str, object] = {
        "recipe": "demo",
        "step": "cover",
        "kind": "text_to_image",
        "provider": "fal",
        "model": "flux-dev",
        "material": "{}",
        "estimated_cost": 0.025,
        "draft": False,
    }
    fields.update(overrides)
    return ledger.begin(key, **fields)  # type: ignore[arg-type]


def claim(ledger: PostgresLedger, key: str, owner: Owner) -> None:
    got = ledger.claim(key, owner, lease_s=600, recipe="demo", step="cover", provider="fal", model="m", estimate=0)
    assert got.held_by is None


# -- reaching the server -----------------------------------------------------------------

@pytest.mark.parametrize(
    ("case", "reason"),
    [
        # the server refuses the password
        ("wrong password", 'password authentication failed for user "acpbuild"'),
        # the server has no such database
        ("no database", "does not exist"),
        # nothing listens at the address
        ("no server", "Connection refused"),
    ],
)
def test_a_ledger_that_cannot_be_reached_is_unreachable_without_its_password(
    postgres: PostgresServer, tmp_path: Path, case: str, reason: str
) -> None:
    secret = "not-the-password-42"
    bad = {
        "wrong password": postgres.url(password=secret),
        "no database": postgres.url("no_such_ledger", password=secret),
        "no server": f"postgresql://acpbuild:{secret}@127.0.0.1:1/ledger",
    }[case]
    if case == "no database":
        bad = bad.replace(secret, PASSWORD)
        secret = PASSWORD
    local = SqliteLedger(tmp_path / "ledger.sqlite3")
    try:
        with pytest.raises(StoreUnreachable) as failed:
            PostgresLedger(bad, local=local)
    finally:
        local.close()
    message = str(failed.value)
    assert message.startswith("cannot reach the ledger at postgresql://acpbuild:***@")
    assert reason in message and secret not in message and "\n" not in message
    assert failed.value.exit_code == 2


def test_open_ledger_reports_an_unreachable_shared_ledger(postgres: PostgresServer, tmp_path: Path) -> None:
    env = {layout.LEDGER_VAR: postgres.url(password="not-the-password-42")}
    with pytest.raises(StoreUnreachable, match=r"acpbuild:\*\*\*@"):
        layout.open_ledger(tmp_path / "store", env)


def test_describe_names_the_server_version_and_hides_the_password(
    postgres: PostgresServer, ledger: PostgresLedger
) -> None:
    described = ledger.describe()
    assert described.startswith(f"PostgreSQL {postgres.version} ledger at postgresql://acpbuild:***@127.0.0.1:")
    assert PASSWORD not in described
    with psycopg.connect(ledger.url) as conn:  # its trial write left nothing behind
        assert conn.execute("SELECT count(*) FROM warned").fetchone() == (0,)


def test_describe_fails_on_a_ledger_it_cannot_write(url: str, tmp_path: Path) -> None:
    PostgresLedger(url, local=SqliteLedger(tmp_path / "one.sqlite3")).close()  # the tables exist
    with psycopg.connect(url, autocommit=True) as conn:
        dbname = conn.info.dbname
        conn.execute(f'ALTER DATABASE "{dbname}" SET default_transaction_read_only = on')
    reader = PostgresLedger(url, local=SqliteLedger(tmp_path / "two.sqlite3"))  # reading still works
    try:
        assert reader.generations() == []
        with pytest.raises(StoreError, match=r"read-only transaction") as refused:
            reader.describe()
        assert "acpbuild:***@" in str(refused.value) and PASSWORD not in str(refused.value)
    finally:
        reader.close()


def test_a_lost_connection_is_reopened_for_reads_and_a_write_is_not_repeated(
    url: str, ledger: PostgresLedger
) -> None:
    def cut() -> None:  # as a server restart or a dropped network would
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )

    gen_id = begin(ledger, "k1")
    cut()
    assert [g.id for g in ledger.generations()] == [gen_id]  # a read: tried again on a new connection
    cut()
    with pytest.raises(StoreError, match=r"acpbuild:\*\*\*@") as failed:
        begin(ledger, "k2")  # a write: it may have committed, so it fails
    assert PASSWORD not in str(failed.value)
    begin(ledger, "k3")  # and the next call connects afresh
    assert [g.key for g in ledger.generations()] == ["k1", "k3"]


# -- the team's cap ----------------------------------------------------------------------

def test_the_cap_holds_across_processes_racing_on_a_new_ledger(url: str, tmp_path: Path) -> None:
    # 4 processes (as if on 4 machines) each try 10 generations of $1 under a $7 cap; they also
    # race to create the schema of a ledger that has none yet
    since = time.time() - 1
    start = time.time() + 2  # all at once, after their imports
    code = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from acpbuild.errors import BudgetExceeded\n"
        "from acpbuild.store import layout\n"
        "from acpbuild.store.ledger import Cap\n"
        "root, name, since, start = Path(sys.argv[1]), sys.argv[2], float(sys.argv[3]), float(sys.argv[4])\n"
        "time.sleep(max(0.0, start - time.time()))\n"
        "ledger = layout.open_ledger(root)\n"
        "cap = Cap(\"the team's cap\", 7.0, since)\n"
        "bought = 0\n"
        "for i in range(10):\n"
        "    try:\n"
        "        ledger.begin(f'{name}-{i}', recipe='r', step=f's{i}', kind='text_to_image', provider='fal',\n"
        "                     model='m', material='{}', estimated_cost=1.0, draft=False, cap=cap)\n"
        "        bought += 1\n"
        "    except BudgetExceeded:\n"
        "        pass\n"
        "print(bought)\n"
    )
    children = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(tmp_path / f"machine-{n}"), f"run-{n}", str(since), str(start)],
            stdout=subprocess.PIPE,
            text=True,
            env=child_env(url),
        )
        for n in range(4)
    ]
    bought = 0
    for child in children:
        out, _ = child.communicate(timeout=120)
        assert child.returncode == 0
        bought += int(out)
    assert bought == 7
    reader = PostgresLedger(url, local=SqliteLedger(tmp_path / "reader.sqlite3"))
    try:
        assert len(reader.generations()) == 7
        assert reader.spent_since(since) == pytest.approx(7.0)
    finally:
        reader.close()


def test_threads_of_one_run_share_the_ledger(ledger: PostgresLedger) -> None:
    ids: list[int] = []

    def work(n: int) -> None:
        for i in range(20):
            ids.append(begin(ledger, f"t{n}-{i}"))
            ledger.claims()

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(ids)) == 160 and len(ledger.generations()) == 160


# -- waiting for a claim -----------------------------------------------------------------

def test_a_release_in_another_process_wakes_a_waiter(url: str, ledger: PostgresLedger, tmp_path: Path) -> None:
    holder = Owner("run-a", "elsewhere", 1)
    claim(ledger, "k1", holder)
    code = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from acpbuild.store import layout\n"
        "from acpbuild.store.ledger import Owner\n"
        "ledger = layout.open_ledger(Path(sys.argv[1]))\n"
        "time.sleep(1.0)\n"
        "ledger.release('k1', Owner('run-a', 'elsewhere', 1))\n"
        "ledger.close()\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "other")], env=child_env(url))
    try:
        started = time.monotonic()
        ledger.wait_released("k1", 30.0)
        waited = time.monotonic() - started
    finally:
        assert child.wait(timeout=60) == 0
    assert waited < 10.0
    assert ledger.claims() == []


def test_a_waiter_wakes_on_the_notification_itself(url: str, ledger: PostgresLedger) -> None:
    # a NOTIFY with the claim still there (as a take-over sends it) wakes the waiter: it is
    # told, not polling the table
    claim(ledger, "k1", Owner("run-a", "elsewhere", 1))

    def notify() -> None:
        time.sleep(0.5)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("SELECT pg_notify('acpbuild_claims', 'k1')")

    sender = threading.Thread(target=notify)
    sender.start()
    started = time.monotonic()
    ledger.wait_released("k1", 30.0)
    waited = time.monotonic() - started
    sender.join()
    assert waited < 10.0
    assert [key for key, *_ in ledger.claims()] == ["k1"]


def test_close_stops_the_listener(url: str, tmp_path: Path) -> None:
    opened = PostgresLedger(url, local=SqliteLedger(tmp_path / "ledger.sqlite3"))
    opened.wait_released("free", 0.1)  # starts the listener
    listener = opened._listener
    assert listener is not None and listener.is_alive()
    opened.close()
    assert not listener.is_alive()


# -- what stays on this machine ----------------------------------------------------------

def test_outputs_and_digests_stay_in_the_local_sqlite_ledger(url: str, ledger: PostgresLedger, tmp_path: Path) -> None:
    out = tmp_path / "out" / "cover.png"
    ledger.set_output(out, key="k1", digest="a" * 32, material="{}", recipe="demo", step="cover")
    ledger.save_digest("a.png", (1, 2, 3, 4, 5), "one")
    local = SqliteLedger(layout.ledger_path(tmp_path / "store"))
    try:
        record = local.output(out)
        assert record is not None and record.key == "k1"
        assert local.load_digest("a.png") == ((1, 2, 3, 4, 5), "one")
    finally:
        local.close()
    with psycopg.connect(url) as conn:
        tables = {row[0] for row in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert tables == {"generations", "restores", "claims", "warned"}


def test_a_lease_is_measured_by_the_servers_clock(url: str, ledger: PostgresLedger) -> None:
    claim(ledger, "k1", Owner("run-a", "elsewhere", 1))
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT lease_until - extract(epoch from clock_timestamp())::float8 FROM claims").fetchone()
    assert row is not None and 590 < row[0] <= 600
    ledger.renew(Owner("run-a", "elsewhere", 1), 60)
    ((_, _, until, _),) = ledger.claims()
    with psycopg.connect(url) as conn:
        now = conn.execute("SELECT extract(epoch from clock_timestamp())::float8").fetchone()
    assert now is not None and 50 < until - now[0] <= 60


def test_a_run_keeps_its_ledger_where_the_environment_it_is_given_names(url: str, tmp_path: Path) -> None:
    import acpbuild

    recipe = tmp_path / "acpbuild.toml"
    recipe.write_text('[recipe]\nname = "shared"\n\n[steps.line]\nkind = "text"\nprompt = "a harbour"\noutput = "line.txt"\n')
    assert acpbuild.run(recipe, env={layout.LEDGER_VAR: url}).success
    with psycopg.connect(url) as conn:
        found = conn.execute("SELECT step, state FROM generations WHERE recipe = 'shared'").fetchall()
    assert found == [("line", "done")]
