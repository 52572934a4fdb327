"""Durations, rates and the profile resolution rules (no pytest run in between)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pytest_shopflow_perf.profile.resolve import (
    DOCUMENTED_MARKER_KEYS,
    MARKER_KEYS,
    PLUGIN_MARKER_KEYS,
    ProfileError,
    Source,
    resolve_profile,
)
from pytest_shopflow_perf.profile.units import UnitError, parse_duration, parse_fraction


@pytest.mark.parametrize(
    ("text", "seconds"),
    [(2, 2.0), (0.5, 0.5), ("250ms", 0.25), ("30s", 30.0), ("5m", 300.0), ("1h", 3600.0), ("1m30s", 90.0),
     ("1.5s", 1.5), ("750us", 0.00075), (" 2 ", 2.0)],
)  # fmt: skip
def test_durations(text, seconds) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["soon", "", "5 parsecs", "-1s", -2, True, None, "1s2", float("nan")])
def test_bad_durations_name_the_accepted_forms(bad) -> None:
    with pytest.raises(UnitError, match='"250ms", "30s", "5m"'):
        parse_duration(bad)


@pytest.mark.parametrize(("text", "fraction"), [("1%", 0.01), ("0.5 %", 0.005), (0.02, 0.02), ("0.1", 0.1)])
def test_fractions(text, fraction) -> None:
    assert parse_fraction(text) == pytest.approx(fraction)


@pytest.mark.parametrize("bad", ["150%", "lots", -0.1, True])
def test_bad_fractions(bad) -> None:
    with pytest.raises(UnitError):
        parse_fraction(bad)


def resolve(marker=None, *, ini=None, env=None, cli=None, scale=1.0):
    return resolve_profile(
        ini=Source("ini", ini or {}),
        marker=Source("@pytest.mark.load", marker or {}),
        env=Source("environment", env or {}),
        cli=Source("command line", cli or {}),
        scale=scale,
    )


def test_defaults() -> None:
    profile = resolve()
    assert (profile.model, profile.users, profile.duration) == ("closed", 10, 10.0)
    assert profile.stages == ((10.0, 10.0),)
    assert profile.target_at(0) == 10


def test_ramps_become_stages_inside_the_duration() -> None:
    profile = resolve({"users": 10, "duration": "30s", "ramp_up": "10s", "ramp_down": "5s"})
    assert profile.stages == ((10.0, 10.0), (15.0, 10.0), (5.0, 0.0))
    assert profile.target_at(0) == 0
    assert profile.target_at(5) == pytest.approx(5)
    assert profile.target_at(20) == 10
    assert profile.target_at(27.5) == pytest.approx(5)


def test_open_model_stages_start_from_the_rate() -> None:
    profile = resolve({"rate": 10, "stages": [("10s", 50), ("10s", 50)]})
    assert profile.is_open
    assert profile.target_at(0) == 10
    assert profile.target_at(5) == pytest.approx(30)
    assert profile.duration == 20


def test_env_and_cli_override_and_stretch_stages() -> None:
    marker = {"stages": [("10s", 20), ("20s", 40), ("10s", 0)]}
    profile = resolve(marker, env={"duration": "20s", "users": "10"})
    assert profile.duration == 20
    assert profile.stages == ((5.0, 5.0), (10.0, 10.0), (5.0, 0.0))
    assert resolve(marker, env={"users": "10"}, cli={"users": 80}).users == 80


def test_scale_multiplies_every_duration() -> None:
    profile = resolve({"users": 5, "duration": "60s", "ramp_up": "10s"}, scale=0.1)
    assert profile.duration == pytest.approx(6.0)
    assert [pytest.approx(stage) for stage in profile.stages] == [(1.0, 5.0), (5.0, 5.0)]


def test_ini_does_not_stretch_a_test_that_states_its_own_shape() -> None:
    profile = resolve({"stages": [("2s", 3)]}, ini={"duration": "60s", "ramp_up": "10s"})
    assert profile.duration == 2
    profile = resolve({"iterations": 5}, ini={"duration": "60s"})
    assert profile.duration == 600


def test_errors_name_the_source() -> None:
    with pytest.raises(ProfileError, match=r"environment: users='many' is not valid"):
        resolve({"users": 3}, env={"users": "many"})
    with pytest.raises(ProfileError, match="stages"):
        resolve({"stages": [("1s",)]})
    with pytest.raises(ProfileError, match="base_url"):
        resolve({"base_url": "ftp://x"})


def _readme_marker_keys() -> list[str]:
    """The keys of the README's marker table, in its order, plus `faults` (its own section)."""
    readme = (Path(__file__).parents[3] / "README.md").read_text()
    table = readme.split("### The marker (all optional)", 1)[1].split("\n\n", 2)[1]
    keys = [key for row in table.splitlines()[2:] for key in re.findall(r"`(\w+)`", row.split("|")[1])]
    assert "faults=[latency(" in readme  # the marker's faults= is documented under Resilience
    return keys


def test_the_accepted_marker_keys_are_the_documented_ones() -> None:
    """Issue 17: the list left out slo and faults (documented) and must show workers as accepted."""
    documented = _readme_marker_keys()
    assert "faults" not in documented  # documented with the faults, not in the table
    assert set(DOCUMENTED_MARKER_KEYS) == {*documented, "faults"}
    assert set(DOCUMENTED_MARKER_KEYS) - set(PLUGIN_MARKER_KEYS) == set(MARKER_KEYS)
    with pytest.raises(ProfileError) as error:
        resolve({"userz": 3})
    accepted = str(error.value).split("; accepted: ", 1)[1].split(", ")
    assert accepted == list(DOCUMENTED_MARKER_KEYS)
    assert {"workers", "slo", "faults"} <= set(accepted)
    assert resolve({"workers": 2}).workers == 2  # accepted, not refused


@pytest.mark.parametrize(
    ("key", "hint"),
    [("userz", "users"), ("durration", "duration"), ("rampup", "ramp_up"), ("slos", "slo"), ("fault", "faults"),
     ("max_user", "max_users"), ("worker", "workers")],
)  # fmt: skip
def test_an_unknown_key_suggests_the_closest_one(key, hint) -> None:
    with pytest.raises(ProfileError, match=re.escape(f"unknown argument(s) {key} (did you mean `{hint}`?)")):
        resolve({key: 1})


def test_an_unknown_key_far_from_every_key_gets_no_suggestion() -> None:
    with pytest.raises(ProfileError) as error:
        resolve({"zzqx": 1, "durration": 1})
    assert "unknown argument(s) durration (did you mean `duration`?), zzqx; accepted: users" in str(error.value)


def test_users_with_rate_is_refused_pointing_at_max_users() -> None:
    """Issue 17: users=2, rate=10 silently ran the open model with 1000 users allowed."""
    with pytest.raises(ProfileError) as error:
        resolve({"users": 2, "rate": 10})
    message = str(error.value)
    assert message.startswith("@pytest.mark.load: users=2 with rate=10: rate= is the open model")
    assert "give max_users=2" in message
    assert resolve({"rate": 10, "max_users": 2}).max_users == 2
    assert resolve({"users": 2, "rate": None}).model == "closed"  # load.run(..., rate=None) drops a marker's rate


def test_users_from_ini_env_or_cli_beside_a_rate_keep_their_documented_meaning() -> None:
    assert resolve({"rate": 10}, ini={"users": 5}).max_users == 1000  # a suite default for closed tests
    assert resolve({"rate": 10}, env={"users": "20"}).max_users == 20  # the CI's override caps the open model
    assert resolve({"rate": 10}, cli={"users": 30}).max_users == 30
