import pytest

from analysis.errors import ConfigError
from analysis.profiles import active_profile, pick


@pytest.mark.parametrize("env, expected", [
    ("", "offline"), ("offline", "offline"), ("full", "full"), ("smoke", "smoke"),
    ("full,latex", "full"), ("latex", "offline"), (" smoke , pdf ", "smoke"),
])
def test_profile_from_quarto_env(monkeypatch, env, expected):
    monkeypatch.setenv("QUARTO_PROFILE", env)
    assert active_profile() == expected


def test_two_experiment_profiles_are_an_error(monkeypatch):
    monkeypatch.setenv("QUARTO_PROFILE", "offline,smoke")
    with pytest.raises(ConfigError, match="exactly one"):
        active_profile()


def test_explicit_profile_wins_and_unknown_is_an_error(monkeypatch):
    monkeypatch.setenv("QUARTO_PROFILE", "full")
    assert active_profile("smoke") == "smoke"
    with pytest.raises(ConfigError, match="unknown profile"):
        active_profile("fast")


def test_pick_names_the_missing_profile():
    with pytest.raises(ConfigError, match="full"):
        pick({"offline": 1}, "full")
