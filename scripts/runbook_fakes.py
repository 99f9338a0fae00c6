#!/usr/bin/env python3
"""`aws lambda invoke` of a real function binary, on loopback, for
scripts/runbook-check.sh.

    python3 scripts/runbook_fakes.py BINARY EVENT_FILE OUT_FILE PUTEVENTS_LOG STDOUT_LOG

Starts a Lambda Runtime API that hands BINARY the one event in EVENT_FILE
(with the headers Lambda sends) and writes its answer to OUT_FILE, and a
PutEvents receiver that accepts every entry and appends it to PUTEVENTS_LOG,
or refuses them all when RUNBOOK_REFUSE_PUTEVENTS=1 (the signature-checking
receiver is local/src/eventbridge.rs; this one only has to record what a
redrive publishes). The binary's stdout and stderr, its log lines, go to
STDOUT_LOG. Exits non-zero if the function fails or never answers.
"""

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

REQUEST_ID = "runbook-check-request"


def serve(handler):
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def runtime_api(event):
    """The Runtime API for one invocation: (server, answer dict, answered event)."""
    answer, answered, sent = {}, threading.Event(), threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            if not self.path.endswith("/invocation/next"):
                self.send_error(404)
                return
            if sent.is_set():  # one event only: the next poll waits until the end
                answered.wait(60)
                time.sleep(60)
                return
            sent.set()
            self.send_response(200)
            for k, v in {
                "Content-Type": "application/json",
                "Lambda-Runtime-Aws-Request-Id": REQUEST_ID,
                "Lambda-Runtime-Deadline-Ms": str(int(time.time() * 1000) + 60_000),
                "Lambda-Runtime-Invoked-Function-Arn": "arn:aws:lambda:us-east-1:123456789012:function:notify",
                "Lambda-Runtime-Trace-Id": "Root=1-00000000-000000000000000000000000",
                "Content-Length": str(len(event)),
            }.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(event)

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            answer.update(path=self.path, body=body.decode())
            self.send_response(202)
            self.send_header("Content-Length", "0")
            self.end_headers()
            answered.set()

    return serve(Handler), answer, answered


def eventbridge(log_path, refuse):
    """A PutEvents receiver that accepts every entry, or refuses every one."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            entries = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0)))).get("Entries", [])
            if refuse:
                results = [{"ErrorCode": "ThrottlingException", "ErrorMessage": "refused on purpose"} for _ in entries]
            else:
                with open(log_path, "a") as f:
                    for e in entries:
                        f.write(json.dumps(e) + "\n")
                results = [{"EventId": str(uuid.uuid4())} for _ in entries]
            failed = sum(1 for r in results if "ErrorCode" in r)
            out = json.dumps({"FailedEntryCount": failed, "Entries": results}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-amz-json-1.1")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

    return serve(Handler)


def main(binary, event_file, out_file, putevents_log, stdout_log):
    with open(event_file, "rb") as f:
        runtime, answer, answered = runtime_api(f.read())
    bus = eventbridge(putevents_log, os.environ.get("RUNBOOK_REFUSE_PUTEVENTS") == "1")
    env = dict(
        os.environ,
        AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{runtime.server_address[1]}",
        AWS_LAMBDA_FUNCTION_NAME="notify",
        AWS_LAMBDA_FUNCTION_MEMORY_SIZE="256",
        AWS_LAMBDA_FUNCTION_VERSION="$LATEST",
        AWS_LAMBDA_LOG_LEVEL="INFO",
        AWS_ENDPOINT_URL_EVENTBRIDGE=f"http://127.0.0.1:{bus.server_address[1]}",
        PARTWISE_EVENT_BUS="default",
        PARTWISE_EVENT_SOURCE="partwise",
    )
    with open(stdout_log, "w") as log:
        proc = subprocess.Popen([binary], env=env, stdout=log, stderr=subprocess.STDOUT)
        ok = answered.wait(60)
        proc.kill()
        proc.wait()
    if not ok:
        sys.exit(f"runbook_fakes: {binary} never answered (its output: {stdout_log})")
    if not answer["path"].endswith("/response"):
        sys.exit(f"runbook_fakes: {binary} failed: {answer['body']}")
    with open(out_file, "w") as f:
        f.write(answer["body"])


if __name__ == "__main__":
    if len(sys.argv) != 6:
        sys.exit(__doc__)
    main(*sys.argv[1:])
