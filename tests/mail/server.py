"""A real SMTP server for the e-mail tests (aiosmtpd), storing every message
it accepts, with faults a test can switch on, and a small HTTP side port to
read the messages and set the faults.

Prints one JSON line {"smtp": port, "http": port} when ready; exits when its
standard input closes (the test that started it ended).

HTTP:
  GET  /messages            every message: envelope, headers (raw names and
                            decoded values), text and HTML bodies, inline images
  GET  /messages/N/html     message N's HTML with its cid: images inlined as data:
  POST /faults              {"refuse": bool, "drop_data": n, "slow_ms": ms}
                            refuse: connections are refused (the server is down);
                            drop_data: the next n messages: the connection is cut
                            after the data arrived, before any answer (not stored);
                            slow_ms: store a message, then wait this long before
                            answering (a client that dies meanwhile never hears
                            that it was taken)
  GET  /message-ids         the Message-ID of every message, in arrival order
  GET  /state               {"stored": n, "waiting": n answers held back now}
"""

import asyncio
import base64
import email
import email.policy
import json
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller

LOCK = threading.Lock()
MESSAGES = []
FAULTS = {"refuse": False, "drop_data": 0, "slow_ms": 0}
# waiting: messages stored whose answer the slow fault holds back right now.
STATE = {"stored": 0, "waiting": 0}


def describe(envelope):
    raw = envelope.original_content or envelope.content
    head = raw.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
    header_names = [line.split(":", 1)[0] for line in head.split("\r\n") if line and not line[0].isspace()]
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    text, html, images = None, None, []
    for part in msg.walk():
        if part.is_multipart():
            continue
        ctype = part.get_content_type()
        if ctype == "text/plain" and text is None:
            text = part.get_content()
        elif ctype == "text/html" and html is None:
            html = part.get_content()
        elif ctype.startswith("image/"):
            data = part.get_payload(decode=True)
            images.append({
                "content_type": ctype,
                "cid": (part.get("Content-ID") or "").strip("<>"),
                "disposition": part.get_content_disposition(),
                "size": len(data),
                "base64": base64.b64encode(data).decode(),
            })
    return {
        "mail_from": envelope.mail_from,
        "rcpt_tos": list(envelope.rcpt_tos),
        "header_names": header_names,
        "headers": {k.lower(): str(v) for k, v in msg.items()},
        "message_id": msg.get("Message-ID"),
        "subject": str(msg.get("Subject")),
        "text": text,
        "html": html,
        "images": images,
    }


class Handler:
    async def handle_DATA(self, server, session, envelope):
        with LOCK:
            drop = FAULTS["drop_data"] > 0
            if drop:
                FAULTS["drop_data"] -= 1
            slow = FAULTS["slow_ms"]
        if drop:
            server.transport.abort()
            return "421 gone"
        described = describe(envelope)
        with LOCK:
            MESSAGES.append(described)
            STATE["stored"] += 1
        if slow:
            with LOCK:
                STATE["waiting"] += 1
            try:
                await asyncio.sleep(slow / 1000)
            finally:
                with LOCK:
                    STATE["waiting"] -= 1
        return "250 OK stored"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


SMTP_PORT = free_port()
# A stopped controller cannot start again: "down" stops it, "up" makes a new one on the same port.
CONTROLLER = [None]


def smtp_up():
    CONTROLLER[0] = Controller(Handler(), hostname="127.0.0.1", port=SMTP_PORT)
    CONTROLLER[0].start()


class Http(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, status, body, ctype="application/json"):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        parts = self.path.strip("/").split("/")
        with LOCK:
            messages = list(MESSAGES)
        if parts == ["messages"]:
            return self.answer(200, messages)
        if parts == ["message-ids"]:
            return self.answer(200, [m["message_id"] for m in messages])
        if parts == ["state"]:
            with LOCK:
                return self.answer(200, dict(STATE))
        if len(parts) == 3 and parts[0] == "messages" and parts[2] == "html" and parts[1].isdigit():
            m = messages[int(parts[1])]
            html = m["html"] or ""
            for image in m["images"]:
                html = html.replace(f"cid:{image['cid']}", f"data:{image['content_type']};base64,{image['base64']}")
            return self.answer(200, html.encode(), "text/html; charset=utf-8")
        self.answer(404, {"error": "no such path"})

    def do_POST(self):
        if self.path != "/faults":
            return self.answer(404, {"error": "no such path"})
        spec = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        with LOCK:
            was_refusing = FAULTS["refuse"]
            FAULTS.update(spec)
            refuse = FAULTS["refuse"]
        if refuse and not was_refusing:
            CONTROLLER[0].stop()
        elif was_refusing and not refuse:
            smtp_up()
        self.answer(200, FAULTS)


def main():
    smtp_up()
    http = ThreadingHTTPServer(("127.0.0.1", 0), Http)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    print(json.dumps({"smtp": SMTP_PORT, "http": http.server_address[1]}), flush=True)
    sys.stdin.read()  # until the test that started us is gone


if __name__ == "__main__":
    main()
