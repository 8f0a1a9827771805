"""Conf: SparkConf's methods, spark.* aliases, typed accessors, and the documented key table."""

from __future__ import annotations

import pathlib

import pytest

from dstreams import Conf
from dstreams.conf import KEYS, canonical_key, parse_duration_ms, parse_master

DOC = pathlib.Path(__file__).resolve().parent.parent / "docs" / "configuration.md"


def test_set_get_and_chaining():
    c = Conf(loadDefaults=False)
    assert c.set("dstreams.task.maxFailures", 2) is c
    assert c.get("dstreams.task.maxFailures") == "2"  # values are stored as strings
    assert c.get("dstreams.missing") is None
    assert c.get("dstreams.missing", "fallback") == "fallback"
    assert c.contains("dstreams.task.maxFailures")
    assert not c.contains("dstreams.missing")


def test_set_master_app_name_set_all_get_all():
    c = Conf(loadDefaults=False).setMaster("local[3]").setAppName("wc")
    c.setAll([("dstreams.speculation", "true"), ("spark.local.dir", "/tmp/x")])
    assert c.get("dstreams.master") == "local[3]"
    assert c.get("spark.master") == "local[3]"
    assert c.getAll() == [
        ("dstreams.app.name", "wc"),
        ("dstreams.local.dir", "/tmp/x"),
        ("dstreams.master", "local[3]"),
        ("dstreams.speculation", "true"),
    ]


def test_spark_aliases_map_to_dstreams_keys():
    c = Conf(loadDefaults=False).set("spark.task.maxFailures", "7")
    assert c.get("dstreams.task.maxFailures") == "7"
    assert c.get("spark.task.maxFailures") == "7"
    assert c.contains("spark.task.maxFailures")
    c.set("dstreams.task.maxFailures", "8")  # one setting, two names
    assert c.get("spark.task.maxFailures") == "8"
    assert len(c.getAll()) == 1
    assert canonical_key("spark.default.parallelism") == "dstreams.default.parallelism"
    with pytest.raises(TypeError):
        canonical_key(3)


def test_environment_defaults(monkeypatch):
    monkeypatch.setenv("DSTREAMS_CONF_TASK__MAXFAILURES", "9")
    assert Conf().get("dstreams.task.maxFailures") == "9"
    assert Conf(loadDefaults=False).get("dstreams.task.maxFailures") is None


def test_typed_accessors_use_registry_defaults():
    c = Conf(loadDefaults=False)
    assert c.get_int("dstreams.task.maxFailures") == 4
    assert c.get_bool("dstreams.speculation") is False
    assert c.get_float("dstreams.speculation.multiplier") == 1.5
    assert c.get_duration_ms("dstreams.speculation.minTaskRuntime") == 100
    assert c.get_int("dstreams.default.parallelism") is None
    with pytest.raises(KeyError, match="dstreams.nope"):
        c.get_int("dstreams.nope")
    c.set("dstreams.speculation", "yes").set("dstreams.task.maxFailures", "x")
    assert c.get_bool("dstreams.speculation") is True
    with pytest.raises(ValueError, match=r"dstreams.task.maxFailures='x'"):
        c.get_int("dstreams.task.maxFailures")


def test_copy_is_independent():
    a = Conf(loadDefaults=False).set("dstreams.app.name", "a")
    b = a.copy()
    b.set("dstreams.app.name", "b")
    assert a.get("dstreams.app.name") == "a"


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("200ms", 200),
        ("2s", 2000),
        ("1.5s", 1500),
        ("1min", 60000),
        ("1m", 60000),
        ("7", 7),
        (250, 250),
        ("1h", 3_600_000),
    ],
)
def test_parse_duration(text, ms):
    assert parse_duration_ms(text) == ms


def test_parse_duration_rejects_garbage():
    with pytest.raises(ValueError, match="'soon'"):
        parse_duration_ms("soon", "dstreams.x")


def test_parse_master():
    import os

    assert parse_master("local") == 1
    assert parse_master("local[4]") == 4
    assert parse_master("local[*]") == (os.cpu_count() or 1)
    assert parse_master("local[2,3]") == 2  # Spark's local[N, maxFailures] form
    for bad in ("local[0]", "yarn", "local[]", "mesos://x"):
        with pytest.raises(ValueError, match=bad.replace("[", r"\[").replace("]", r"\]")):
            parse_master(bad)


def test_every_key_has_a_default_and_doc():
    for name, key in KEYS.items():
        assert name == key.name
        assert name.startswith("dstreams.")
        assert key.doc.strip()


def test_every_key_is_documented_in_configuration_md():
    text = DOC.read_text(encoding="utf-8")
    missing = [name for name in KEYS if f"`{name}`" not in text]
    assert not missing, f"docs/configuration.md does not document {missing}"
    shipped = {"dstreams.ui.enabled": "true"}  # the suite turns the UI off (tests/conftest.py)
    for key in KEYS.values():
        default = shipped.get(key.name, key.default)
        if default is not None:
            row = next(ln for ln in text.splitlines() if ln.startswith(f"| `{key.name}`"))
            assert f"`{default}`" in row, f"{key.name}: default {default!r} not documented"


def test_secrets_are_redacted_wherever_the_conf_is_shown():
    c = Conf(loadDefaults=False).setAll(
        [
            ("spark.hadoop.fs.s3a.secret.key", "hunter2"),
            ("dstreams.db.password", "pw"),
            ("dstreams.kafka.sasl.accessKey", "AKIA"),
            ("dstreams.app.name", "wc"),
        ]
    )
    for shown in (c.toDebugString(), repr(c), str(c.redacted())):
        assert "hunter2" not in shown and "pw'" not in shown and "AKIA" not in shown
        assert "wc" in shown and "*********(redacted)" in shown
    assert c.get("dstreams.db.password") == "pw"  # only what is shown is redacted
    c.set("spark.redaction.regex", "(?i)app")
    assert dict(c.redacted())["dstreams.app.name"] == "*********(redacted)"
    assert dict(c.redacted())["dstreams.db.password"] == "pw"
    with pytest.raises(ValueError, match="'\\(unclosed' is not a regular expression"):
        Conf(loadDefaults=False).set("dstreams.redaction.regex", "(unclosed").redacted()
