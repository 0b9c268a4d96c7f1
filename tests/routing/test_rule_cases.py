"""`hub-receiver rules test --cases PATH`: rule test cases, as partners run them in CI."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from receiver.routing.cases import CasesError, load_cases
from receiver.settings import rules_environment
from tests.routing.support import load
from tests.support.cli import hub_receiver as run_cli
from tests.support.processes import REPO

SHIPPED_RULES = REPO / "routing_rules"
SHIPPED_CASES = SHIPPED_RULES / "tests"

RULES = """
    targets: {ops: "", alerts: ""}
    rules:
      - name: team hears about violations
        match: {event: account_violation}
        notify: [alerts]
        throttle: 1h
      - name: team hears about new clients
        match: {event: client_created}
        notify: [ops]
"""

VIOLATION_CASE = """
    cases:
      - name: a violation alerts the team
        event: {event: account_violation, data: {id: kJ2mQ8CH, violation_type: SCAM}}
        expect:
          - {rule: team hears about violations, targets: %s}
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def run_cases(tmp_path: Path, cases: str, *args: str) -> tuple[int, str, str]:
    write(tmp_path, "rules.yaml", RULES)
    case_file = write(tmp_path / "cases", "violations.yaml", cases)
    result = run_cli(
        "rules", "test", "--cases", str(case_file), *args, env={"RULES_PATH": str(tmp_path)}
    )
    return result.returncode, result.stdout, result.stderr


@pytest.fixture(autouse=True)
def cases_folder(tmp_path: Path) -> None:
    (tmp_path / "cases").mkdir()


def test_the_shipped_cases_hold_for_the_shipped_rules() -> None:
    result = run_cli(
        "rules", "test", "--cases", str(SHIPPED_CASES), env={"RULES_PATH": str(SHIPPED_RULES)}
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert " 0 failed" in result.stdout.splitlines()[-1]


def test_the_shipped_cases_cover_every_shipped_rule_and_a_case_where_nobody_hears() -> None:
    shipped = load(
        (SHIPPED_RULES / "default.yaml").read_text(encoding="utf-8"), env=rules_environment()
    )
    cases = [loaded.case for loaded in load_cases(SHIPPED_CASES)]

    expected = {e.rule for case in cases for e in case.expect}
    assert {rule.name for rule in shipped.rules} <= expected
    assert any(not case.expect for case in cases)


def test_a_case_that_holds_passes(tmp_path: Path) -> None:
    code, out, err = run_cases(tmp_path, VIOLATION_CASE % "[alerts]")

    assert code == 0, out + err
    assert "ok    " in out
    assert "case 'a violation alerts the team'" in out
    assert out.splitlines()[-1] == "1 case: 1 passed, 0 failed"


def test_a_wrong_expectation_fails_with_a_diff_naming_file_and_case(tmp_path: Path) -> None:
    code, out, _ = run_cases(tmp_path, VIOLATION_CASE % "[ops]")

    assert code == 1
    assert "FAIL  " in out
    assert "cases/violations.yaml:3: case 'a violation alerts the team'" in out
    assert "expected: team hears about violations -> [ops]" in out
    assert "got:      team hears about violations -> [alerts]" in out
    assert "~ team hears about violations: targets expected [ops], got [alerts]" in out
    assert out.splitlines()[-1] == "1 case: 0 passed, 1 failed"


def test_a_rule_that_fires_unexpectedly_or_not_at_all_is_named_with_the_reason(
    tmp_path: Path,
) -> None:
    cases = """
        cases:
          - name: nobody hears about a violation
            event: {event: account_violation, data: {id: kJ2mQ8CH}}
            expect: []
          - name: a client created is a violation
            event: {event: client_created, data: {id: Vb7xR2CL}}
            expect:
              - {rule: team hears about violations, targets: [alerts]}
              - {rule: team hears about new clients, targets: [ops]}
              - {rule: a rule renamed since, targets: [ops]}
    """
    code, out, _ = run_cases(tmp_path, cases)

    assert code == 1
    assert "+ team hears about violations -> [alerts]  (fired, not expected)" in out
    assert (
        "- team hears about violations -> [alerts]  (expected, did not fire: "
        "event is client_created, rule wants account_violation)"
    ) in out
    assert "- a rule renamed since -> [ops]  (expected, did not fire: no rule has this name)" in out
    assert out.splitlines()[-1] == "2 cases: 0 passed, 2 failed"


def test_a_throttle_expectation_checks_the_window_and_the_key(tmp_path: Path) -> None:
    cases = """
        cases:
          - name: right
            event: {event: account_violation, data: {id: kJ2mQ8CH}}
            expect:
              - rule: team hears about violations
                targets: [alerts]
                throttled: {window: 60m, key: "channel:kJ2mQ8CH"}
          - name: wrong
            event: {event: client_created, data: {id: Vb7xR2CL}}
            expect:
              - {rule: team hears about new clients, targets: [ops], throttled: true}
    """
    code, out, _ = run_cases(tmp_path, cases)

    assert code == 1
    assert "ok    " in out
    assert "~ team hears about new clients: throttled expected yes, got not throttled" in out


def test_a_status_change_and_the_enriched_channel_reach_the_rules(tmp_path: Path) -> None:
    write(
        tmp_path,
        "rules.yaml",
        """
        targets: {ops: ""}
        rules:
          - name: German numbers going live
            match:
              status: {from: sandbox, to: live}
              where: {channel.setup_info.phone_number: {pattern: '^\\+49'}}
            notify: [ops, client]
        """,
    )
    case_file = write(
        tmp_path / "cases",
        "live.yaml",
        """
        cases:
          - name: enriched and changed
            event: {event: channel_live, data: {id: kJ2mQ8CH}}
            channel: {id: kJ2mQ8CH, setup_info: {phone_number: "+4915112345678"}}
            status_change: sandbox:live
            expect: [{rule: German numbers going live, targets: [client, ops]}]
          - name: no change
            event: {event: channel_live, data: {id: kJ2mQ8CH}}
            channel: {id: kJ2mQ8CH, setup_info: {phone_number: "+4915112345678"}}
            expect: []
          - name: payload only
            event: {event: channel_live, data: {id: kJ2mQ8CH}}
            status_change: {from: sandbox, to: live}
            expect: []
        """,
    )
    result = run_cli("rules", "test", "--cases", str(case_file), env={"RULES_PATH": str(tmp_path)})

    assert result.returncode == 0, result.stdout + result.stderr


def test_a_missing_cases_path_is_one_line_naming_it(tmp_path: Path) -> None:
    write(tmp_path, "rules.yaml", RULES)
    missing = tmp_path / "nope.yaml"
    result = run_cli("rules", "test", "--cases", str(missing), env={"RULES_PATH": str(tmp_path)})

    assert result.returncode == 2
    assert result.stderr.strip() == f"{missing}: no such file or folder"


@pytest.mark.parametrize(
    ("case", "problem"),
    [
        (
            "- {name: typo, event: {event: x}, expect: [], expcet: []}",
            "violations.yaml:3: case 'typo': expcet: unknown key",
        ),
        (
            "- {name: no targets, event: {event: x}, expect: [{rule: r}]}",
            "violations.yaml:3: case 'no targets': expect[0].targets: Field required",
        ),
        (
            "- {name: bad window, event: {event: x}, expect: "
            "[{rule: r, targets: [], throttled: {window: soon}}]}",
            "case 'bad window': expect[0].throttled.window: 'soon' is not a duration",
        ),
        (
            "- {event: {event: x}, expect: []}",
            "violations.yaml:3: case '#1': name: Field required",
        ),
    ],
)
def test_a_malformed_case_is_one_line_naming_file_case_and_key(
    tmp_path: Path, case: str, problem: str
) -> None:
    code, _, err = run_cases(tmp_path, "\n    cases:\n      " + case + "\n")

    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert problem in err


def test_cases_files_report_every_problem_and_duplicate_names(tmp_path: Path) -> None:
    write(
        tmp_path,
        "a.yaml",
        """
        cases:
          - {name: same, event: {event: x}, expect: []}
          - {name: same, event: {event: x}, expect: []}
        """,
    )
    write(tmp_path, "b.yaml", "cases: nothing\n")

    with pytest.raises(CasesError) as raised:
        load_cases(tmp_path)

    lines = str(raised.value).splitlines()
    assert lines == [
        f"{tmp_path / 'a.yaml'}:4: case 'same': name: duplicate case name",
        f"{tmp_path / 'b.yaml'}:1: cases: expected `cases:` with a list of cases",
    ]


def test_muted_and_grouped_are_decided_as_routing_decides_them(tmp_path: Path) -> None:
    write(
        tmp_path,
        "rules.yaml",
        """
        time_intervals:
          - name: nights
            time_intervals: [{times: [{start_time: "22:00", end_time: "24:00"}]}]
        targets: {ops: ""}
        rules:
          - name: quiet at night
            match: {event: client_created}
            notify: [ops]
            mute_during: [nights]
          - name: grouped per client
            match: {event: channel_live}
            notify: [ops]
            group_by: [client.id]
        """,
    )
    case_file = write(
        tmp_path / "cases",
        "quiet.yaml",
        """
        cases:
          - name: at night
            event: {event: client_created, data: {id: Vb7xR2CL}}
            at: 2026-03-02T23:00:00Z
            expect: [{rule: quiet at night, targets: [ops], muted: true}]
          - name: by day
            event: {event: client_created, data: {id: Vb7xR2CL}}
            at: 2026-03-02T12:00:00Z
            expect: [{rule: quiet at night, targets: [ops], muted: true}]
          - name: grouped
            event: {event: channel_live, data: {id: kJ2mQ8CH, client_id: Vb7xR2CL}}
            expect: [{rule: grouped per client, targets: [ops], grouped: true, muted: false}]
        """,
    )
    result = run_cli("rules", "test", "--cases", str(case_file), env={"RULES_PATH": str(tmp_path)})

    assert result.returncode == 1, result.stdout + result.stderr
    assert "ok    " in result.stdout
    assert "case 'at night'" in result.stdout
    assert "~ quiet at night: muted expected yes, got no" in result.stdout
    assert result.stdout.splitlines()[-1] == "3 cases: 2 passed, 1 failed"
