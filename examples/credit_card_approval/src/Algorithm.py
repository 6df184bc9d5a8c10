"""Credit card approval: a small scoring model that reports Insights.

It speaks the ADK protocol with the Python standard library alone, exactly as an algorithm
built with `algorithmia-adk` does: print PIPE_INIT_COMPLETE when loaded, read one JSON request
per stdin line, write one JSON answer per line to /tmp/algoout, and report inference metrics
with POST $ALGORITHMIA_API/v1/insights (what `client.report_insights(...)` sends).

Input:  {"income": 52000, "debt": 9000, "age": 34, "late_payments": 1}
Output: {"approved": true, "risk_score": 0.21, "limit": 5200}
"""

import json
import math
import os
import sys
import traceback
import urllib.request

FIFO_PATH = "/tmp/algoout"
API = os.environ.get("ALGORITHMIA_API", "http://localhost:9000")

# "Trained" weights of a logistic model (a stand-in for a real one loaded from disk).
WEIGHTS = {"debt_ratio": 4.2, "late_payments": 0.9, "young": 0.6}
BIAS = -2.3


def report_insights(metrics):
    body = json.dumps(
        [{"insight_key": k, "insight_value": v} for k, v in metrics.items()]
    ).encode("utf-8")
    request = urllib.request.Request(
        API + "/v1/insights",
        data=body,
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        urllib.request.urlopen(request, timeout=5).read()
    except Exception as e:  # like the official client: reporting never fails the execution
        print("insights report failed: %s" % e, file=sys.stderr)


def apply(applicant):
    if not isinstance(applicant, dict):
        raise ValueError("expected an object like {\"income\": 52000, \"debt\": 9000, \"age\": 34}")
    income = float(applicant.get("income", 0))
    if income <= 0:
        raise ValueError("income must be a positive number")
    debt = float(applicant.get("debt", 0))
    late = int(applicant.get("late_payments", 0))
    age = int(applicant.get("age", 30))
    z = (
        BIAS
        + WEIGHTS["debt_ratio"] * (debt / income)
        + WEIGHTS["late_payments"] * late
        + WEIGHTS["young"] * (1 if age < 25 else 0)
    )
    risk = 1 / (1 + math.exp(-z))
    approved = risk < 0.5
    limit = int(income * 0.1 * (1 - risk)) if approved else 0
    report_insights({"risk_score": round(risk, 4), "approved": approved, "credit_limit": limit})
    print("scored applicant: risk=%.4f approved=%s" % (risk, approved))
    return {"approved": approved, "risk_score": round(risk, 4), "limit": limit}


def answer(payload):
    with open(FIFO_PATH, "w") as f:
        f.write(json.dumps(payload))
        f.write("\n")


def main():
    if not os.path.exists(FIFO_PATH):
        # Local mode, as the ADK has: python3 src/Algorithm.py '{"income": 52000}'
        print(json.dumps(apply(json.loads(sys.argv[1] if len(sys.argv) > 1 else "{}"))))
        return
    print("PIPE_INIT_COMPLETE", flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        try:
            result = apply(request["data"])
            answer({"result": result, "metadata": {"content_type": "json"}})
        except Exception as e:
            answer({
                "error": {
                    "message": str(e),
                    "stacktrace": traceback.format_exc(),
                    "error_type": "AlgorithmError",
                }
            })


if __name__ == "__main__":
    main()
