"""The official `algorithmia` client (PyPI 2.0.5) calling an unmodified `algorithmia-adk` 1.2.4
algorithm on the built `insights` server, and the Insights payloads those calls produce."""

import os
import re
import shutil
import sys
import tempfile
import time

import Algorithmia
import pytest
import requests
from Algorithmia.errors import AlgorithmException

HERE = os.path.dirname(os.path.abspath(__file__))
ADMIN = "e2e-admin-token"
OWNER, NAME = "acme", "adk_scorer"
OPERATIONAL = [
    "duration_milliseconds",
    "algorithm_version",
    "request_id",
    "time",
    "algorithm_name",
    "session_id",
    "algorithm_owner",
]
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


@pytest.fixture(scope="module")
def server():
    from conftest import Server

    data = tempfile.mkdtemp(prefix="insights-e2e-")
    s = Server(["--data-dir", data], env={"INSIGHTS_ADMIN_TOKEN": ADMIN})
    url = s.url
    admin = requests.Session()
    admin.headers["Authorization"] = "Bearer " + ADMIN
    r = admin.post(
        url + "/v1/algorithms/" + OWNER,
        json={
            "name": NAME,
            "source": {
                "path": os.path.join(HERE, "adk_algorithm"),
                "command": [sys.executable, "-u", "src/Algorithm.py"],
            },
            "settings": {"pool_size": 2},
        },
    )
    assert r.status_code == 201, r.text
    r = admin.post(
        url + "/v1/algorithms/%s/%s/versions" % (OWNER, NAME),
        json={"version_info": {"version_type": "major"}, "settings": {"insights_enabled": True}},
    )
    assert r.status_code == 201, r.text
    assert r.json()["version_info"]["semantic_version"] == "1.0.0"
    key = admin.post(url + "/v1/admin/api-keys", json={"name": "e2e"}).json()["key"]
    yield {"url": url, "key": key, "admin": admin}
    s.stop()
    shutil.rmtree(data)


def all_payloads(server):
    query = "algorithm=%s/%s&limit=1000" % (OWNER, NAME)
    return server["admin"].get(server["url"] + "/v1/admin/insights/payloads?" + query).json()


def client(server):
    """The official client, with a response hook that records each call's request id (the
    server's `x-request-id` header), so that a test finds exactly its own payload."""
    c = Algorithmia.client(server["key"], api_address=server["url"])
    c.request_ids = []
    c.requestSession.hooks["response"].append(
        lambda r, *args, **kwargs: c.request_ids.append(r.headers.get("x-request-id"))
    )
    return c


def payload_of(server, request_id):
    """The payload of one execution (delivery is asynchronous: waits up to 10 s for it)."""
    deadline = time.monotonic() + 10
    while True:
        found = [p for p in all_payloads(server) if p["request_id"] == request_id]
        if found:
            assert len(found) == 1, found
            return found[0]
        assert time.monotonic() < deadline, "no payload for " + request_id
        time.sleep(0.02)


def test_pipe_returns_the_result_and_the_payload_has_every_key_in_its_format(server):
    c = client(server)
    response = c.algo("%s/%s/1.0.0" % (OWNER, NAME)).pipe({"debt": 9000})
    assert response.result == {"risk_score": 0.18, "approved": True}
    assert response.metadata.content_type == "json"
    assert isinstance(response.metadata.duration, float) and response.metadata.duration > 0

    p = payload_of(server, c.request_ids[-1])
    assert list(p.keys()) == ["risk_score", "approved"] + OPERATIONAL
    assert p["risk_score"] == 0.18 and isinstance(p["risk_score"], float)
    assert p["approved"] == 1
    assert p["algorithm_name"] == NAME and p["algorithm_owner"] == OWNER
    assert p["algorithm_version"] == "1.0.0"
    assert re.fullmatch("req-" + UUID, p["request_id"]), p
    assert re.fullmatch("rses-" + UUID, p["session_id"]), p
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}", p["time"]), p
    assert isinstance(p["duration_milliseconds"], int)


def test_the_latest_version_is_used_without_one(server):
    c = client(server)
    response = c.algo("%s/%s" % (OWNER, NAME)).pipe({"debt": 30000})
    assert response.result == {"risk_score": 0.6, "approved": False}
    p = payload_of(server, c.request_ids[-1])
    assert (p["risk_score"], p["approved"], p["algorithm_version"]) == (0.6, 0, "1.0.0")


def test_text_binary_and_stdout(server):
    algo = client(server).algo("%s/%s/1.0.0" % (OWNER, NAME))
    assert algo.pipe("hello").result == "HELLO"
    assert algo.pipe(bytearray(b"\x00\x01\xff")).result == b"\xff\x01\x00"
    algo.set_options(stdout=True)
    response = algo.pipe({"debt": 1000})
    assert "scored risk=0.02" in response.metadata.stdout


def test_an_algorithm_error_raises_its_message_and_still_produces_a_payload(server):
    c = client(server)
    algo = c.algo("%s/%s/1.0.0" % (OWNER, NAME))
    with pytest.raises(AlgorithmException) as err:
        algo.pipe({"fail": True})
    # The algorithm's own exception reaches the caller.
    assert "applicant record is incomplete" in err.value.message
    if sys.version_info >= (3, 10):
        # algorithmia-adk 1.2.4 formats exceptions with traceback.format_exception(etype=...),
        # which Python 3.10 removed: the ADK itself dies while reporting the error. The runtime
        # says so, with the algorithm's last output, and replaces the worker.
        assert err.value.error_type == "SystemError"
        assert "crashed" in err.value.message and "etype" in err.value.message
    else:
        assert err.value.error_type == "AlgorithmError"
    p = payload_of(server, c.request_ids[-1])
    assert list(p.keys()) == OPERATIONAL
    # The pool keeps serving.
    assert algo.pipe({"debt": 0}).result == {"risk_score": 0.0, "approved": True}


def test_a_wrong_key_is_refused(server):
    bad = Algorithmia.client("simNOTAKEY", api_address=server["url"])
    with pytest.raises(Exception) as err:
        bad.algo("%s/%s" % (OWNER, NAME)).pipe({"debt": 1})
    assert "401" in str(err.value)
