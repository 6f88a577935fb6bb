"""Receive ota_cm_order_processed webhooks: Python 3, standard library only.
Run: CM_WEBHOOK_SECRET=whsec_... python3 receiver.py [PORT], behind your HTTPS proxy."""
import hashlib, hmac, json, os, sys, time  # noqa: E401, I001
from http.server import BaseHTTPRequestHandler, HTTPServer

SECRET = os.environ["CM_WEBHOOK_SECRET"].encode()  # the subscription's secret
TOLERANCE = 300  # seconds: a signature older (or newer) than this may be a replay
seen = set()  # eventIds handled: keep them in your database, beside what you did with them

def verified(header: str, body: bytes) -> bool:
    """CM-Signature is t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + raw body)>."""
    parts = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    t = parts.get("t", "")
    if not t.isdigit() or abs(time.time() - int(t)) > TOLERANCE:
        return False
    expected = hmac.new(SECRET, t.encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), parts.get("v1", "").encode())

class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))  # the raw bytes, as signed
        if not verified(self.headers.get("CM-Signature", ""), body):
            status, text = 400, b"bad signature"
        elif (event := json.loads(body))["eventId"] in seen:  # at least once: answer a repeat, don't redo it
            status, text = 200, b"duplicate"
        else:
            order = event["data"]["order"]
            print("handled", event["eventId"], order["orderId"], order["status"], flush=True)  # your work
            seen.add(event["eventId"])  # once done: if the work raised, no 2xx went out and it comes again
            status, text = 200, b"ok"
        self.send_response(status)
        self.send_header("Content-Length", str(len(text)))
        self.end_headers()
        self.wfile.write(text)

# HTTPServer answers one request at a time: no race on `seen`.
HTTPServer(("127.0.0.1", int(sys.argv[1]) if len(sys.argv) > 1 else 9000), Receiver).serve_forever()
