"""Loading: folders, merging, ${VAR} expansion, source info, the shipped defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from receiver.routing import RulesError, load_rules, match_rules
from receiver.routing.events import KNOWN_EVENTS
from receiver.routing.yamlnodes import expand_variables
from receiver.vocabulary import PERMISSION_EVENTS

from .support import load, sample_subject, subject

ROOT = Path(__file__).resolve().parents[2]


def write(folder: Path, name: str, text: str) -> None:
    (folder / name).write_text(text)


def test_a_folder_loads_yaml_files_in_name_order_with_merged_targets(tmp_path: Path) -> None:
    write(tmp_path, "20-client.yml", "rules: [{name: b, match: {}, notify: [ops, client]}]\n")
    write(
        tmp_path,
        "10-team.yaml",
        'targets: {ops: "json://x"}\nrules: [{name: a, match: {}, notify: [ops]}]\n',
    )
    write(tmp_path, "notes.txt", "not rules")
    (tmp_path / "templates").mkdir()
    ruleset = load_rules(tmp_path, env={})
    assert [r.name for r in ruleset.rules] == ["a", "b"]
    assert [r.file for r in ruleset.rules] == [
        str(tmp_path / "10-team.yaml"),
        str(tmp_path / "20-client.yml"),
    ]
    assert [f.path for f in ruleset.source.files] == [r.file for r in ruleset.rules]
    assert [m.rule for m in match_rules(ruleset, subject())] == ["a", "b"]


def test_duplicates_across_files_are_errors(tmp_path: Path) -> None:
    write(
        tmp_path,
        "a.yaml",
        'targets: {ops: "json://x"}\nrules: [{name: r, match: {}, notify: [ops]}]\n',
    )
    write(
        tmp_path,
        "b.yaml",
        'targets: {ops: "json://y"}\nrules: [{name: r, match: {}, notify: [ops]}]\n',
    )
    with pytest.raises(RulesError) as caught:
        load_rules(tmp_path, env={})
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    assert [str(p) for p in caught.value.problems] == [
        f"{b}:1: targets.ops: target 'ops' is already defined at {a}:1",
        f"{b}:2: rule 'r': name: duplicate rule name (first at {a}:2)",
    ]


def test_a_missing_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match="no such file or folder"):
        load_rules(tmp_path / "nope", env={})


def test_the_content_hash_changes_with_the_content(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "rules: []\n")
    first = load_rules(tmp_path, env={}).source.digest
    assert load_rules(tmp_path, env={}).source.digest == first
    write(tmp_path, "a.yaml", "rules: []  # changed\n")
    assert load_rules(tmp_path, env={}).source.digest != first


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        ("${A}", {"A": "1"}, "1"),
        ("x${A}y", {"A": "1"}, "x1y"),
        ("${A:-dflt}", {}, "dflt"),
        ("${A:-}", {}, ""),
        ("${A:-dflt}", {"A": ""}, ""),
        ("${A:-${B:-b}}", {}, "b"),
        ("${A:-${B:-b}}", {"B": "2"}, "2"),
        ("$${A}", {"A": "1"}, "${A}"),
        ("cost $5", {}, "cost $5"),
        ("${not a var}", {}, "${not a var}"),
    ],
)
def test_variables_expand_from_the_given_environment(
    text: str, env: dict[str, str], expected: str
) -> None:
    missing: list[str] = []
    assert expand_variables(text, env, missing.append) == expected
    assert missing == []


def test_variables_work_in_any_string_including_durations() -> None:
    ruleset = load(
        """
        targets: {ops: "json://${HOST}/x"}
        rules:
          - name: r
            match: {where: {client.id: "${VIP}"}}
            notify: [ops]
            throttle: "${WINDOW:-2h}"
        """,
        env={"HOST": "localhost", "VIP": "CL1"},
    )
    assert ruleset.targets["ops"].url == "json://localhost/x"
    assert ruleset.rules[0].throttle_seconds == 7200
    assert len(match_rules(ruleset, subject(client={"id": "CL1"}))) == 1


def test_an_empty_target_loads_as_not_configured() -> None:
    ruleset = load(
        'targets: {ops: "${OPS:-}", off: ~}\nrules: [{name: r, match: {}, notify: [ops, off]}]\n'
    )
    assert not ruleset.targets["ops"].configured
    assert ruleset.target_url("ops") is None
    assert ruleset.target_url("off") is None
    assert ruleset.target_url("client") is None
    assert "json" not in repr(ruleset.targets["ops"])


def test_target_repr_hides_the_url() -> None:
    ruleset = load('targets: {ops: "slack://SECRET/#x"}\n')
    assert "SECRET" not in repr(ruleset.targets["ops"])
    assert "SECRET" not in repr(ruleset)


def test_unknown_event_and_status_names_load_with_warnings() -> None:
    ruleset = load(
        "rules: [{name: r, match: {event: channel_lvie, status: {to: gone}}, notify: [client]}]"
    )
    assert [str(w) for w in ruleset.warnings] == [
        "rules.yaml:1: rule 'r': match.event[0]: event 'channel_lvie' is not a known 360dialog "
        "event; the rule fires only if one arrives with exactly this name",
        "rules.yaml:1: rule 'r': match.status.to[0]: status 'gone' is not a known status "
        "(draft, pending_review, sandbox, live, restricted, banned, pending_deletion, "
        "unregistered, error, unknown, deleted)",
    ]


def test_every_derived_status_loads_without_a_warning() -> None:
    # `status: {from, to}` compares the derived statuses of receiver/status.py, not hub_status.
    ruleset = load(
        "rules: [{name: r, match: {status: {from: pending_review, to: restricted}},"
        " notify: [client]}]"
    )
    assert ruleset.warnings == ()


def test_yaml_anchors_and_merge_keys_work() -> None:
    ruleset = load(
        """
        targets: {ops: "json://x"}
        rules:
          - &base {name: a, match: {event: channel_live}, notify: [ops]}
          - {<<: *base, name: b}
        """
    )
    assert [r.name for r in ruleset.rules] == ["a", "b"]
    assert ruleset.rules[1].events == frozenset({"channel_live"})


def test_the_shipped_default_rules_load_with_an_empty_environment() -> None:
    ruleset = load_rules(ROOT / "routing_rules", env={})
    assert ruleset.warnings == ()
    assert {"ops", "alerts"} <= set(ruleset.targets)
    assert not any(t.configured for t in ruleset.targets.values())


def test_the_default_rules_tell_the_team_about_every_known_event_once() -> None:
    ruleset = load_rules(ROOT / "routing_rules", env={"OPS_NOTIFY_URL": "json://x"})
    for event in (*KNOWN_EVENTS, "an_event_from_the_future"):
        # Permission callbacks are claims: the team hears about confirmed ones only.
        fields = {"claim": "confirmed"} if event in PERMISSION_EVENTS else None
        if event == "number_health_changed":  # a change to a state the team must hear about
            fields = {"health_from": "available", "health_to": "blocked"}
        if event in ("channel_reconciled", "client_reconciled"):  # as the watcher records them
            fields = {"source": "reconcile"}
        fired = match_rules(ruleset, subject(event, event=fields))
        team = [m for m in fired if "client" not in m.targets]
        assert len(team) == 1, (event, team)


def test_the_default_rules_tell_nobody_about_an_unconfirmed_permission_claim() -> None:
    ruleset = load_rules(ROOT / "routing_rules", env={"OPS_NOTIFY_URL": "json://x"})
    for event in PERMISSION_EVENTS:
        for claim in ("unconfirmed", "rejected"):
            assert match_rules(ruleset, subject(event, event={"claim": claim})) == []


def test_the_default_rules_email_the_client_when_their_number_goes_live() -> None:
    ruleset = load_rules(ROOT / "routing_rules", env={})
    fired = match_rules(ruleset, sample_subject("channel_live", status_change=("draft", "live")))
    assert [(m.rule, m.targets) for m in fired] == [
        ("team hears about every number lifecycle event", ("ops",)),
        ("client hears their number is live", ("client",)),
    ]


def test_the_default_rules_throttle_violations_per_channel() -> None:
    ruleset = load_rules(ROOT / "routing_rules", env={})
    fired = match_rules(ruleset, sample_subject("account_violation"))
    # The client hears about a restriction (a status change), not about every violation.
    assert [(m.targets, m.throttle_seconds, m.throttle_key) for m in fired] == [
        (("alerts",), 3600, "channel:kJ2mQ8CH"),
    ]


def test_the_default_rules_tell_team_and_client_about_pending_deletion() -> None:
    ruleset = load_rules(ROOT / "routing_rules", env={})
    fired = match_rules(
        ruleset, subject("account_restriction", status_change=("live", "pending_deletion"))
    )
    assert [m.rule for m in fired] == [
        "team hears about violations and restrictions, at most hourly per number",
        "team hears about every other status change",
        "team hears when a number is about to be deleted",
        "client hears their number will be deleted",
    ]


def test_yes_no_on_off_stay_text_as_in_yaml_1_2() -> None:
    ruleset = load(
        """
        targets: {off: "json://x", on: ""}
        rules:
          - {name: r, match: {where: {event.answer: no}}, notify: [off, on], enabled: true}
        """
    )
    assert set(ruleset.targets) == {"off", "on"}
    assert ruleset.rules[0].enabled is True
    assert len(match_rules(ruleset, subject(event={"answer": "no"}))) == 1
