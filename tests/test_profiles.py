import pytest

from analysis.errors import ConfigError
from analysis.profiles import active_profile, pick


@pytest.mark.parametrize("env, expected", [
    ("", "offline"), ("offline", "offline"), ("full", "full"), ("smoke", "smoke"),
    ("full,latex", "full"), ("latex", "offline"), (" smoke , latex ", "smoke"), ("smoke,smoke", "smoke"),
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


@pytest.mark.parametrize("env", ["smok", "Smoke", "OFFLINE", "pdf", "full,lat", "offline,fulll"])
def test_unknown_profile_in_the_environment_is_an_error(monkeypatch, env):
    monkeypatch.setenv("QUARTO_PROFILE", env)
    with pytest.raises(ConfigError, match="unknown profile") as err:
        active_profile()
    assert "EXTRA_PROFILES" in str(err.value) and "\n" not in str(err.value)


def test_a_typo_gets_a_suggestion(monkeypatch):
    monkeypatch.setenv("QUARTO_PROFILE", "smok")
    with pytest.raises(ConfigError, match="did you mean 'smoke'"):
        active_profile()


def test_chapters_code_path_refuses_a_typo(monkeypatch):
    """What a chapter calls (lookup/get_or_run without a profile) reads QUARTO_PROFILE and refuses a typo."""
    from analysis import experiments

    monkeypatch.setenv("QUARTO_PROFILE", "smok")
    with pytest.raises(ConfigError, match="unknown profile 'smok'"):
        experiments.lookup("agnews_stats")
    with pytest.raises(ConfigError, match="unknown profile 'smok'"):
        experiments.get_or_run("agnews_stats")


def test_extra_profiles_are_declared_in_one_place():
    from analysis import profiles

    assert set(profiles.EXTRA_PROFILES).isdisjoint(profiles.PROFILES)
    assert set(profiles.DESCRIPTIONS) == set(profiles.PROFILES)
