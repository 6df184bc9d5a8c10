"""The `insights` binary as an operator runs it: the demo, twice on the same data directory,
and algorithms declared in a config file."""

import os
import re
import subprocess
import time

import requests

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def wait_payloads(url, token, query, n):
    deadline = time.monotonic() + 10
    while True:
        got = requests.get(
            url + "/v1/admin/insights/payloads?" + query, headers={"Authorization": "Bearer " + token}
        ).json()
        if len(got) >= n:
            return got
        assert time.monotonic() < deadline, "expected %d payloads, have %d" % (n, len(got))
        time.sleep(0.02)


def test_the_demo_runs_twice_on_the_same_data_dir_and_its_curl_line_works(start_server, tmp_path):
    data = str(tmp_path / "data")
    for run in (1, 2):
        s = start_server(["--demo", "--data-dir", data])
        out = s.stdout_until("Press Ctrl-C")
        assert out.count("→ {") == 3, out
        key = re.search(r"Authorization: Simple (sim[0-9a-f]+)", out).group(1)
        # The printed curl line works as printed.
        curl = re.search(r"(curl -s -X POST .*?)\n\n", out, re.S).group(1).replace("\\\n", " ")
        answer = subprocess.run(["bash", "-c", curl], capture_output=True, text=True, check=True).stdout
        assert '"approved"' in answer, answer
        token = open(os.path.join(data, "admin-token")).read().strip()
        assert oct(os.stat(os.path.join(data, "admin-token")).st_mode & 0o777) == "0o600"
        payloads = wait_payloads(s.url, token, "algorithm=demo/credit_card_approval", 4 * run)
        assert {"risk_score", "approved", "credit_limit"} <= set(payloads[0]), payloads[0]
        assert token not in "".join(s.log), "the admin token must never be logged"
        s.stop()


def test_algorithms_declared_in_a_config_file(start_server, tmp_path):
    config = tmp_path / "insights.toml"
    config.write_text(
        """
data_dir = "data"
[[algorithm]]
owner = "declared"
name = "scorer"
source = { path = "%s", command = ["python3", "-u", "src/Algorithm.py"] }
settings = { pool_size = 1 }
[[algorithm.version]]
version = "2.0.0"
insights_enabled = true
"""
        % os.path.join(REPO, "examples", "credit_card_approval")
    )
    token = "config-test-token"
    for run in (1, 2):
        s = start_server(["--config", str(config)], env={"INSIGHTS_ADMIN_TOKEN": token})
        key = requests.post(
            s.url + "/v1/admin/api-keys", json={"name": "k"}, headers={"Authorization": "Bearer " + token}
        ).json()["key"]
        r = requests.post(
            s.url + "/v1/algo/declared/scorer/2.0.0",
            json={"income": 50000, "debt": 5000},
            headers={"Authorization": "Simple " + key},
        )
        assert r.status_code == 200 and "result" in r.json(), r.text
        versions = requests.get(
            s.url + "/v1/algorithms/declared/scorer/versions", headers={"Authorization": "Bearer " + token}
        ).json()["results"]
        assert [v["version_info"]["semantic_version"] for v in versions] == ["2.0.0"]
        wait_payloads(s.url, token, "algorithm=declared/scorer", run)
        s.stop()
    assert (tmp_path / "data" / "insights.sqlite").exists(), "data_dir is relative to the config file"


def test_a_bad_config_file_names_the_key_and_exits(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text('[limits]\nhandoff_capacity = 0\n')
    r = subprocess.run(
        [os.environ["INSIGHTS_BIN"], "serve", "--config", str(config), "--listen", "127.0.0.1:0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode != 0
    assert "handoff_capacity" in r.stderr, r.stderr
