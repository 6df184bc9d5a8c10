"""A test algorithm that does whatever its input asks, to exercise the runtime.

Standard library only; speaks the ADK protocol by hand. Input (JSON object), all optional:
  reports:      list of report bodies, each POSTed to $ALGORITHMIA_API/v1/insights in order;
                the result lists each answer as [status, body]
  late_report:  a report body sent 0.3 s after answering (its status is kept for `late_status`);
                with `late_go`/`late_done` (paths), sent once `late_go` exists, then `late_done`
                is written
  late_status:  return the status of the previous late report
  print:        a line to print before answering
  raw_stdout:   base64 bytes written to stdout as they are (any bytes, no newline added)
  env:          a list of environment variable names; the result maps each to its value or null
  spam:         print lines as fast as possible, for ever
  sleep:        seconds to sleep before answering
  started:      a path written as the execution starts
  wait_for:     a path to wait for (after the reports) before answering
  crash:        exit abruptly with status 3 (after printing "about to crash")
  hang:         never answer
  garbage:      write a line that is not an answer to /tmp/algoout
  error:        answer with an AlgorithmError carrying this message
  echo:         returned as the result
  idle_print:   {"go": path, "lines": N, "width": W, "tail": T, "done": path}: after answering,
                a thread waits for `go` to exist, prints N lines of W characters and then T with
                no newline (between calls: nobody's output), flushes, then writes `done`
  idle_exit:    {"go": path, "status": S}: after answering, a thread waits for `go` to exist,
                then exits the process with status S (a crash between calls)
Text input is echoed back as text, binary input is returned reversed as binary.
The result always includes "pid".
"""

import base64
import json
import os
import sys
import threading
import time
import urllib.error
import urllib.request

API = os.environ["ALGORITHMIA_API"]
late = {"status": None}


def post_report(body):
    req = urllib.request.Request(
        API + "/v1/insights",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return [r.status, json.loads(r.read())]
    except urllib.error.HTTPError as e:
        return [e.code, json.loads(e.read())]


def answer(obj):
    with open("/tmp/algoout", "w") as f:
        f.write(json.dumps(obj) + "\n")


def wait_for_file(path):
    """Polls: the probe is standard library only, and the test creates the file when it wants."""
    while not os.path.exists(path):
        time.sleep(0.01)


def after_answer(then):
    """Runs `then` in a thread, so that the answer is written first."""
    threading.Thread(target=then, daemon=True).start()


def handle(request):
    ct, data = request["content_type"], request["data"]
    if ct == "text":
        return {"result": data, "metadata": {"content_type": "text"}}
    if ct == "binary":
        raw = base64.b64decode(data)[::-1]
        return {"result": base64.b64encode(raw).decode(), "metadata": {"content_type": "binary"}}
    data = data if isinstance(data, dict) else {"echo": data}
    if "print" in data:
        print(data["print"])
    if "raw_stdout" in data:
        sys.stdout.buffer.write(base64.b64decode(data["raw_stdout"]))
        sys.stdout.buffer.flush()
    if "started" in data:
        with open(data["started"], "w") as f:
            f.write("started")
    if "sleep" in data:
        time.sleep(data["sleep"])
    reports = [post_report(b) for b in data.get("reports", [])]
    if "wait_for" in data:
        wait_for_file(data["wait_for"])
    if data.get("crash"):
        print("about to crash")
        sys.stdout.flush()
        os._exit(3)
    if data.get("hang"):
        time.sleep(3600)
    if data.get("spam"):
        while True:
            print("spam " * 200)
    if data.get("garbage"):
        with open("/tmp/algoout", "w") as f:
            f.write("this is not an answer\n")
        return None
    if "error" in data:
        return {"error": {"message": data["error"], "stacktrace": "Traceback: probe", "error_type": "AlgorithmError"}}
    result = {"pid": os.getpid(), "echo": data.get("echo")}
    if "reports" in data:
        result["reports"] = reports
    if "env" in data:
        result["env"] = {name: os.environ.get(name) for name in data["env"]}
    if data.get("late_status"):
        result["late_status"] = late["status"]
    if "late_report" in data:
        body = data["late_report"]
        go, done = data.get("late_go"), data.get("late_done")

        def later():
            # With `late_go`, the report waits until that file exists (the caller creates it
            # once this execution's answer has reached it), and `late_done` is written once
            # the report was answered: no timing decides which execution the report meets.
            if go:
                wait_for_file(go)
            else:
                time.sleep(0.3)
            late["status"] = post_report(body)
            if done:
                with open(done, "w") as f:
                    f.write(json.dumps(late["status"]))

        after_answer(later)
    if "idle_print" in data:
        spec = data["idle_print"]

        def chatter():
            wait_for_file(spec["go"])
            for _ in range(spec["lines"]):
                print("i" * spec["width"])
            print(spec.get("tail", ""), end="")
            sys.stdout.flush()
            with open(spec["done"], "w") as f:
                f.write("done")

        after_answer(chatter)
    if "idle_exit" in data:
        spec = data["idle_exit"]

        def leave():
            wait_for_file(spec["go"])
            os._exit(spec["status"])

        after_answer(leave)
    return {"result": result, "metadata": {"content_type": "json"}}


print("loading probe")
print("PIPE_INIT_COMPLETE", flush=True)
for line in sys.stdin:
    out = handle(json.loads(line))
    if out is not None:
        answer(out)
