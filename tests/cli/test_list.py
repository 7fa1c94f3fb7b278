import json


def test_list_shows_name_target_distribution_version(cli):
    status, out, _ = cli("list")
    assert status == 0
    line = next(l for l in out.splitlines() if l.startswith("gmp"))
    assert "tfsparse.strategies.gmp:GMP" in line and "tfsparse" in line and "0.1.0" in line


def test_list_json(cli):
    status, out, _ = cli("list", "--json")
    entries = {e["name"]: e for e in json.loads(out)}
    assert status == 0 and entries["gmp"]["distribution"] == "tfsparse"
