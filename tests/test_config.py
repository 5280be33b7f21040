"""Configuration: defaults, file, environment precedence, and clear errors."""

import pytest

from modbot.config import Config, default_config_text, load_config
from modbot.errors import ConfigError


def test_defaults_are_dry_run():
    c = load_config(None, env={})
    assert c.actions.report is False and c.actions.comment is False
    assert c.images.max_bytes == 20_000_000


def test_packaged_defaults_file_documents_every_key():
    import tomllib

    text = default_config_text()
    data = tomllib.loads(text)
    c = Config()
    for section in data:
        for key, value in data[section].items():
            assert getattr(getattr(c, section), key) == (tuple(value) if isinstance(value, list) else value), (section, key)
    for section in ("reddit", "storage", "images", "judge", "actions", "medium"):
        import dataclasses
        for f in dataclasses.fields(getattr(c, section)):
            assert f.name in data[section], f"{section}.{f.name} undocumented"


def test_file_then_env_precedence(tmp_path):
    p = tmp_path / "modbot.toml"
    p.write_text('[reddit]\nsubreddits = "Art+ArtistLounge"\n[actions]\nreport = true\n'
                 '[judge]\nthresholds = { digital = 0.8 }\n')
    c = load_config(p, env={"MODBOT_ACTIONS_REPORT": "false", "MODBOT_IMAGES_MAX_BYTES": "1000"})
    assert c.reddit.subreddits == "Art+ArtistLounge"
    assert c.actions.report is False  # env wins over file
    assert c.images.max_bytes == 1000
    assert c.judge.threshold_for("digital") == 0.8
    assert c.judge.threshold_for("painting") == c.judge.default_threshold


def test_config_path_from_env(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text('[storage]\ndatabase = "x.db"\n')
    assert load_config(None, env={"MODBOT_CONFIG": str(p)}).storage.database == "x.db"


@pytest.mark.parametrize("text,needle", [
    ("[nope]\na = 1\n", "unknown section"),
    ("[actions]\nreprot = true\n", "unknown key actions.reprot"),
    ("[actions]\nreport = \"yes\"\n", "true or false"),
    ("[images]\nmax_bytes = 1.5\n", "integer"),
    ("[reddit\n", "cannot read"),
])
def test_bad_config_is_a_clear_error(tmp_path, text, needle):
    p = tmp_path / "bad.toml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=needle):
        load_config(p, env={})


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml", env={})


def test_packaged_toml_is_the_one_source_of_defaults():
    import dataclasses
    import tomllib

    from modbot.config import default_config_text

    toml = tomllib.loads(default_config_text())
    config = Config()
    sections = {f.name for f in dataclasses.fields(Config) if f.name != "source"}
    assert set(toml) == sections
    for section in sections:
        fields = {f.name for f in dataclasses.fields(getattr(config, section))}
        assert set(toml[section]) == fields, section
        for key, value in toml[section].items():
            got = getattr(getattr(config, section), key)
            assert (list(got) if isinstance(got, tuple) else got) == value, (section, key)


def test_retry_delay_doubles_per_attempt():
    daemon = Config().replace(daemon={"retry_base_s": 10.0}).daemon
    assert [daemon.next_attempt_at(a, 100.0) for a in (1, 2, 3)] == [110.0, 120.0, 140.0]


@pytest.mark.parametrize(("toml", "named"), [
    ('[actions]\nreport_template = "looks like {nosuch}"', "report_template"),
    ('[actions]\ncomment_template = "{predicted:.0%} sure"', "comment_template"),
    ('[actions]\nreport_template = "{0}"', "report_template"),
    ("[judge]\ndefault_threshold = 7", "default_threshold"),
    ("[judge]\nthresholds = { paintng = 0.9 }", "thresholds"),
    ("[judge]\nthresholds = { painting = 1.5 }", "thresholds.painting"),
    ("[daemon]\nmax_attempts = 0", "max_attempts"),
    ("[reddit]\nrequests_per_minute = 500", "requests_per_minute"),
    ('[reddit]\nsubreddits = "Art; DROP TABLE"', "subreddits"),
    ("[images]\ntotal_timeout = -1.0", "total_timeout"),
    ("[storage]\nimage_cache_max_bytes = -1", "image_cache_max_bytes"),
    ("[storage]\nimage_cache_max_bytes = 2.5e10", "integer"),
    ("[storage]\nimage_cache_prune_interval_s = -60.0", "image_cache_prune_interval_s"),
    ('[medium]\nvocabulary = { "oil pastel" = "pastels" }', "vocabulary"),
    ('[learning]\nstated_labels = "some"', "stated_labels"),
    ("[learning]\nnice = 40", "nice"),
    ("[learning]\nkeep_versions = -1", "keep_versions"),
    ("[learning]\nkeep_versions = 2.5", "integer"),
])
def test_values_types_alone_cannot_catch_are_refused_at_load(tmp_path, toml, named):
    """Issue 12 item 2: each of these was accepted at start and on SIGHUP before, and then
    failed every mismatch's action (templates) or ran with nonsense (thresholds, attempts)."""
    path = tmp_path / "bad.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        load_config(path, env={})


def test_good_templates_and_values_load(tmp_path):
    path = tmp_path / "good.toml"
    path.write_text('[actions]\nreport_template = "modbot: {predicted} ({confidence:.0%}), stated {stated}"\n'
                    "[judge]\nthresholds = { painting = 0.9 }\n")
    assert load_config(path, env={}).judge.threshold_for("painting") == 0.9
