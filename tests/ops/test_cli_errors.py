"""What a newcomer sees when the CLI cannot do what was asked: one line, never a traceback."""

from __future__ import annotations

import pytest

from receiver.http.loopback import free_port
from tests.ops.cli_support import delivery, event, store
from tests.support.cli import hub_receiver

PASSWORD = "Pg-S3cret-Pw"


@pytest.fixture
def closed_port_url() -> str:
    """A PostgreSQL URL on a port nothing listens on (the database is down)."""
    return f"postgresql://hub:{PASSWORD}@127.0.0.1:{free_port()}/hub"


@pytest.mark.parametrize(
    "command",
    [
        ("migrate",),
        ("channels", "list"),
        ("channels", "show", "kJ2mQ8CH"),
        ("deliveries", "list"),
        ("deliveries", "retry", "--all-dead"),
        ("retention", "run", "--days", "30"),
    ],
)
def test_a_database_that_is_down_is_one_line_naming_database_url(
    closed_port_url: str, command: tuple[str, ...]
) -> None:
    result = hub_receiver(*command, DATABASE_URL=closed_port_url)

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert "DATABASE_URL=postgresql+asyncpg://hub:***@127.0.0.1:" in result.stderr
    assert "Connect call failed" in result.stderr
    assert PASSWORD not in result.stderr + result.stdout


def test_a_database_that_refuses_the_login_is_named_without_the_password(pg_url: str) -> None:
    wrong = pg_url.replace("/hub_test_", "/no_such_db_")

    result = hub_receiver("deliveries", "list", DATABASE_URL=wrong)

    assert result.returncode == 1
    assert result.stderr.startswith("hub-receiver: cannot use the database at DATABASE_URL=")
    assert "does not exist" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("command", "says"),
    [
        (("channels", "list", "--limit", "-1"), "argument --limit: -1 is negative"),
        (("deliveries", "list", "--limit", "lots"), "argument --limit: 'lots' is not a whole"),
        (("deliveries", "retry", "99999999999999999999"), "99999999999999999999 is not an id"),
        (("deliveries", "retry", "0"), "0 is not an id"),
        (("replay", "99999999999999999999"), "99999999999999999999 is not an id"),
        (("retention", "run", "--days", "-5"), "-5 is not a number of days"),
        (("retention", "run", "--days", "0"), "0 is not a number of days"),
    ],
)
def test_a_value_out_of_range_is_refused_before_anything_runs(
    command: tuple[str, ...], says: str, closed_port_url: str
) -> None:
    # The database is down: a refusal must come from the arguments, not from a query.
    result = hub_receiver(*command, DATABASE_URL=closed_port_url)

    assert result.returncode == 2
    assert says in result.stderr
    assert "Traceback" not in result.stderr
    assert "DATABASE_URL" not in result.stderr


async def test_retrying_the_largest_id_answers_that_nothing_is_due(database_url: str) -> None:
    await store(database_url, event(1), delivery(1, event_id=1, rule="r", error="e"))

    result = hub_receiver("deliveries", "retry", str(2**63 - 1), DATABASE_URL=database_url)

    assert result.returncode == 1
    assert "nothing to retry" in result.stdout
    assert "Traceback" not in result.stderr


def test_send_test_without_a_running_server_says_where_it_posted() -> None:
    port = free_port()

    result = hub_receiver("send-test", "channel_live", PORT=str(port))

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"cannot post to http://127.0.0.1:{port}/webhooks/partner" in result.stderr
    assert "Connection refused" in result.stderr


@pytest.mark.parametrize("command", [("rules", "check"), ("serve",), ("deliveries", "list")])
def test_a_client_email_url_that_is_not_mailto_stops_start_up_naming_the_variable(
    command: tuple[str, ...],
) -> None:
    result = hub_receiver(*command, CLIENT_EMAIL_URL=f"smtp://hub:{PASSWORD}@smtp.example.com")

    assert result.returncode == 2
    assert "CLIENT_EMAIL_URL" in result.stderr
    assert "mailto:// or mailtos://" in result.stderr
    assert PASSWORD not in result.stderr
    assert "Traceback" not in result.stderr


def test_a_client_email_url_naming_its_own_recipient_stops_start_up() -> None:
    result = hub_receiver(
        "rules", "check", CLIENT_EMAIL_URL=f"mailtos://hub:{PASSWORD}@smtp.example.com/ops@x.com"
    )

    assert result.returncode == 2
    assert "CLIENT_EMAIL_URL" in result.stderr
    assert "recipients" in result.stderr
    assert PASSWORD not in result.stderr


def test_rules_check_reports_a_client_email_url_apprise_cannot_use() -> None:
    url = f"mailtos://hub:{PASSWORD}@smtp.example.com?from=hub@example.com&cc=a[x]@b.com"

    result = hub_receiver("rules", "check", CLIENT_EMAIL_URL=url)

    assert result.returncode == 1
    assert "CLIENT_EMAIL_URL:" in result.stderr
    assert "invalid email address" in result.stderr
    assert PASSWORD not in result.stderr


def test_rules_check_accepts_a_working_client_email_url() -> None:
    url = f"mailtos://hub:{PASSWORD}@smtp.example.com?from=hub@example.com"

    result = hub_receiver("rules", "check", CLIENT_EMAIL_URL=url)

    assert result.returncode == 0, result.stderr
    assert "rules OK" in result.stdout


async def test_deliveries_list_shows_the_whole_rule_name_and_error(database_url: str) -> None:
    rule = "tell the team when a number goes live, in every market we serve" + " (eu)"
    error = (
        "failure: Sending JSON notification to 127.0.0.1 failed: error=503. "
        "the sink said it is down for maintenance until 10:00 UTC"
    )
    await store(database_url, event(1), delivery(1, event_id=1, rule=rule, error=error))

    result = hub_receiver("deliveries", "list", DATABASE_URL=database_url)

    assert result.returncode == 0, result.stderr
    assert rule in result.stdout
    assert error in result.stdout
