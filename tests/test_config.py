"""Config validation: each problem is one line naming the key path."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import write_config
from warnd.cli import EX_CONFIG, main
from warnd.config import load_config, parse_duration
from warnd.errors import ConfigError

RSS = """
[[sources]]
name = "media"
kind = "rss"
location = "feeds/"
interval = "1h"
dimension = "interest"
"""


#: a part of a host name (between dots) longer than the 63 characters DNS allows, not ASCII
LONG_LABEL = "overvåking-" + "ø" * 60


def errors_of(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as ei:
        load_config(path)
    return ei.value.messages


def test_valid_config_loads_and_resolves_paths(tmp_path):
    p = write_config(tmp_path, RSS)
    cfg = load_config(p)
    assert [s.name for s in cfg.sources] == ["media"]
    assert cfg.resolve_location("feeds/") == str(tmp_path / "feeds/")
    assert cfg.state_dir == tmp_path / "state"
    assert cfg.substance_label("ketamin") == "ketamin"


def test_shipped_config_is_valid(root):
    cfg = load_config(root / "config.toml")
    assert cfg.sources and cfg.substances


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (RSS.replace('"1h"', '"10 parsecs"'),
         'sources[0].interval: "10 parsecs" is not a duration'),
        (RSS + 'colour = "blue"\n', "sources[0].colour: unknown key"),
        (RSS.replace('"interest"', '"popularity"'), "sources[0].dimension: 'popularity' is not allowed"),
        (RSS.replace('"rss"', '"telepathy"'), 'sources[0].kind: "telepathy" is not a source kind'),
        (RSS.replace('name = "media"\n', ""), "sources[0].name: required key is missing"),
        (RSS + 'cron = "0 6 * * 1"\n', "sources[0]: give either interval or cron, not both"),
        (RSS + RSS, 'sources[1].name: "media" is used by another source'),
        ('[general]\nlanguage = "de"\n', "general.language: 'de' is not allowed"),
        ("[bogus]\nx = 1\n", "bogus: unknown key"),
        ('[[targets]]\nname = "teams"\nurl = "msteams://a/b/c"\n',
         "targets[0].url: msteams:// was retired"),
        ('[[targets]]\nname = "x"\nurl = "nosuchscheme://host"\n',
         'targets[0].url: target "x" cannot be used: unknown scheme "nosuchscheme://"'),
        ('[[targets]]\nname = "teams"\nurl = "https://127.0.0.1:8443/workflows/abc/triggers/manual/'
         'paths/invoke?api-version=1&sig=s"\n',
         'targets[0].url: target "teams" cannot be used: a pasted Teams workflow URL is accepted '
         'only on a Microsoft host (…logic.azure.com or …powerplatform.com), not "127.0.0.1"; '
         "for another host write workflows://127.0.0.1:8443/WORKFLOW_ID/SIGNATURE/"),
        ('[[targets]]\nname = "ops"\nurl = "mailto://127.0.0.1?from=a@b.org&to=c@d.org"\n'
         '[[routes]]\ntargets = ["nobody"]\n', 'routes[0].targets: "nobody" matches no target'),
        (RSS + 'substances = ["kokain"]\n', 'sources[0].substances: "kokain" is not a configured'),
        (RSS.replace('"rss"', '"count_table"') + 'files = "sum"\n',
         "sources[0].files: 'sum' is not allowed; input should be 'replace' or 'add'"),
        (RSS.replace('"rss"', '"count_table"') + 'removed_rows = "drop"\n',
         "sources[0].removed_rows: 'drop' is not allowed; input should be 'withdraw' or 'keep'"),
    ],
)
def test_each_error_names_the_key(tmp_path, body, expected):
    if body.startswith("[general]"):
        p = tmp_path / "c.toml"
        p.write_text(body + '[substances.x]\nnames = ["x"]\n')
    else:
        p = write_config(tmp_path, body)
    msgs = errors_of(p)
    assert any(expected in m for m in msgs), msgs


def test_a_table_written_as_an_array_or_the_other_way_round_says_how_to_write_it(tmp_path):
    """`[[substances]]` where warnd asks for one table a substance, and `[sources]`
    where it asks for an array of tables: each error says how to write it. Before, it
    said "Input should be a valid dictionary" with the parsed list."""
    p = tmp_path / "c.toml"
    p.write_text('[[substances]]\nid = "ketamin"\nnames = ["ketamin"]\n'
                 '[sources]\nname = "x"\nkind = "count_table"\nlocation = "x.csv"\n'
                 'dimension = "use"\n')
    assert errors_of(p) == [
        "substances: give each as a table of its own, [substances.<id>] (an array of "
        "tables, [[substances]], was given)",
        "sources: give each as [[sources]] (a single table, [sources], was given)"]


def test_kind_specific_option_is_checked_by_the_feed(tmp_path):
    p = write_config(tmp_path, RSS + "no_such_option = 1\n")
    assert any(m.startswith("sources[0].no_such_option: unknown key") for m in errors_of(p))


def test_detection_overrides_are_validated(tmp_path):
    p = write_config(tmp_path, RSS + "[detection]\nno_such_threshold = 3\n")
    assert any(m.startswith("detection.no_such_threshold: unknown key") for m in errors_of(p))


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[general\nstate_dir = 1\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


def test_include_merges_sources(tmp_path):
    (tmp_path / "more.toml").write_text(RSS)
    p = write_config(tmp_path, "")
    p.write_text('include = ["more.toml"]\n' + p.read_text())
    assert [s.name for s in load_config(p).sources] == ["media"]


def test_config_path_order(tmp_path, monkeypatch):
    a = write_config(tmp_path, RSS, name="a.toml")
    monkeypatch.setenv("WARND_CONFIG", str(a))
    assert load_config().path == a
    monkeypatch.delenv("WARND_CONFIG")
    write_config(tmp_path, "", name="config.toml")
    assert load_config().path.name == "config.toml"


def test_durations():
    assert parse_duration("1h30m").total_seconds() == 5400
    assert parse_duration("2w").days == 14
    assert parse_duration(90).total_seconds() == 90
    for bad in ("", "h", "10 parsecs", "5x"):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_check_config_command(tmp_path, capsys):
    good = write_config(tmp_path, RSS, name="good.toml")
    assert main(["check-config", str(good)]) == 0
    assert "OK" in capsys.readouterr().out
    bad = write_config(tmp_path, RSS.replace('"1h"', '"10 parsecs"'), name="bad.toml")
    assert main(["check-config", str(bad)]) == EX_CONFIG
    err = capsys.readouterr().err
    assert f'{bad}: sources[0].interval: "10 parsecs" is not a duration' in err


@pytest.mark.parametrize("top, general, says", [
    (RSS.replace('"1h"', '"36500000d"'), "",
     'sources[0].interval: "36500000d" is too long (at most 100 years, "36500d")'),
    (RSS.replace('"1h"', '"0.5s"'), "", 'sources[0].interval: "0.5s" is too short (at least'),
    ("", 'detect_interval = "99999999999d"\n',
     'general.detect_interval: "99999999999d" is too long a duration'),
    ('include = ["extra\\u0000.toml"]\n', "",
     "cannot read config file: its name holds a NUL character"),
    ("x = " + "[" * 5000 + "]" * 5000 + "\n", "",
     "not valid TOML: arrays or tables nested too deeply"),
    ("", f'health_listen = "{LONG_LABEL}.example.no:9464"\n',
     f'general.health_listen: "{LONG_LABEL}.example.no:9464" is not a host name: each part '
     "between dots must be 1 to 63 characters long"),
    ("", 'health_listen = "helse\\u0000.example.no:9464"\n',
     "general.health_listen: 'helse\\x00.example.no:9464': the host name holds a NUL"),
])
def test_check_config_names_what_the_calendar_or_the_file_system_cannot_take(
        tmp_path, capsys, top, general, says):
    """An interval the scheduler cannot put on the calendar, a duration with more digits
    than a time span holds, an include naming a NUL character, arrays nested without end:
    one line, exit 78, as for any other mistake. Before, the interval passed check-config
    and raised an OverflowError out of the scheduler at `run` and at a reload, and the
    others raised out of loading the config (an OverflowError, a ValueError, a
    RecursionError) with a traceback: exit 1, which systemd restarts, and a reload ended
    the daemon. So was a health listener's host name the socket layer cannot encode (a
    part between dots of more than 63 characters, not all ASCII; a NUL character): it
    passed check-config, and the listener raised a TypeError when the daemon started."""
    p = tmp_path / "config.toml"
    base = write_config(tmp_path, "", name="base.toml").read_text(encoding="utf-8")
    p.write_text(top + base.replace("[general]\n", "[general]\n" + general), encoding="utf-8")
    assert main(["check-config", str(p)]) == EX_CONFIG
    assert says in capsys.readouterr().err


def test_detection_params_apply_each_table_in_order_and_are_made_once_per_pair(tmp_path):
    """[detection] < [substances.<id>.detection] < a source's own table; series whose
    tables are the same share one params object (a detect pass asks for every source
    and substance), and a source is found by name however many there are."""
    body = '[detection]\nglr_h = 7.0\n' + "".join(
        f'\n[[sources]]\nname = "src{i}"\nkind = "count_table"\nlocation = "c{i}.csv"\n'
        f'dimension = "use"\n' + ('detection = { glr_h = 9.0 }\n' if i == 3 else "")
        for i in range(40))
    subs = ('\n[substances.ketamin]\nnames = ["ketamin"]\n'
            '[substances.ketamin.detection]\nspike_alpha = 0.0005\n'
            '\n[substances.kokain]\nnames = ["kokain"]\n')
    cfg = load_config(write_config(tmp_path, body, substances=subs))
    assert cfg.source("src39").location.endswith("c39.csv")
    with pytest.raises(KeyError):
        cfg.source("nowhere")
    k0, k1, k3 = (cfg.detection_params("ketamin", f"src{i}") for i in (0, 1, 3))
    assert (k0.glr_h, k0.spike_alpha) == (7.0, 0.0005) and k0 is k1
    assert (k3.glr_h, k3.spike_alpha) == (9.0, 0.0005)
    c0, c3 = cfg.detection_params("kokain", "src0"), cfg.detection_params("kokain", "src3")
    assert (c0.glr_h, c3.glr_h) == (7.0, 9.0) and c0.spike_alpha != 0.0005
    assert cfg.detection_params("kokain", "nowhere") is c0  # an unknown source: no table
    assert cfg.detection_params("kokain") is c0
