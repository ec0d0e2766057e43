#!/usr/bin/env python3
"""A real SMTP server for Fenghuo's email tests, built on aiosmtpd.

    smtp_server.py OUT_DIR [--starttls CERT KEY | --implicit-tls CERT KEY]
                           [--auth USER:PASS]

Listens on 127.0.0.1 on a free port and prints that port as the first line of
stdout once it accepts connections. Every message it receives is written to
OUT_DIR as one JSON file (written to a temporary name, then renamed, so a
reader never sees half a file) holding the envelope, the raw message and the
message as Python's `email` module parses it: headers decoded (RFC 2047) and
each MIME part's content type and decoded text.

--starttls offers STARTTLS and requires it before MAIL; --implicit-tls speaks
TLS from the first byte (port 465 style). --auth requires AUTH PLAIN or LOGIN
with that user and password before MAIL. The server runs until killed or
until its stdin closes, so it never outlives the test that started it.

Needs aiosmtpd (`python3 -m pip install aiosmtpd`).
"""

import argparse
import asyncio
import email
import email.policy
import json
import os
import ssl
import sys
import threading
import uuid

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class Recorder:
    def __init__(self, out_dir, implicit_tls):
        self.out_dir = out_dir
        self.implicit_tls = implicit_tls

    async def handle_DATA(self, server, session, envelope):
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        parts = []
        for part in msg.walk():
            if part.is_multipart():
                continue
            try:
                content = part.get_content()
            except Exception as e:  # noqa: BLE001 - recorded for the test to see
                content = f"<undecodable: {e}>"
            if isinstance(content, bytes):
                content = content.decode("utf-8", "replace")
            parts.append(
                {
                    "content_type": part.get_content_type(),
                    "charset": part.get_content_charset(),
                    "transfer_encoding": part.get("Content-Transfer-Encoding"),
                    "content": content,
                }
            )
        headers = {}
        for name, value in msg.items():
            headers.setdefault(name, []).append(str(value))
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "tls": self.implicit_tls or server._tls_protocol is not None,
            "authenticated": bool(session.authenticated),
            "auth_user": (
                session.auth_data.login.decode("utf-8", "replace")
                if isinstance(session.auth_data, LoginPassword)
                else None
            ),
            "content_type": msg.get_content_type(),
            "headers": headers,
            "parts": parts,
            "raw": raw.decode("utf-8", "replace"),
        }
        name = uuid.uuid4().hex
        tmp = os.path.join(self.out_dir, f".{name}.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(record, f, ensure_ascii=False, indent=1)
        os.replace(tmp, os.path.join(self.out_dir, f"{name}.json"))
        return "250 OK message accepted"


def authenticator_for(user, password):
    def authenticate(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == user.encode()
            and auth_data.password == password.encode()
        )
        # handled=False: aiosmtpd answers (235 or 535) itself.
        return AuthResult(
            success=ok, handled=False, auth_data=auth_data if ok else None
        )

    return authenticate


def tls_context(cert, key):
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    return ctx


async def serve(args):
    implicit = args.implicit_tls is not None
    handler = Recorder(args.out_dir, implicit)
    smtp_kwargs = {"hostname": "fenghuo-test-smtp", "enable_SMTPUTF8": True}
    server_ssl = None
    if args.starttls:
        smtp_kwargs["tls_context"] = tls_context(*args.starttls)
        smtp_kwargs["require_starttls"] = True
    if implicit:
        server_ssl = tls_context(*args.implicit_tls)
    if args.auth:
        user, _, password = args.auth.partition(":")
        smtp_kwargs["authenticator"] = authenticator_for(user, password)
        smtp_kwargs["auth_required"] = True
        # AUTH only over TLS, except when the test asks for plain SMTP with
        # auth, or the whole connection is TLS already.
        smtp_kwargs["auth_require_tls"] = bool(args.starttls)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(handler, loop=loop, **smtp_kwargs),
        host="127.0.0.1",
        port=args.port,
        ssl=server_ssl,
    )
    port = server.sockets[0].getsockname()[1]
    print(port, flush=True)

    # Exit when the test closes our stdin (or dies): no orphan servers.
    stop = asyncio.Event()

    def watch_stdin():
        try:
            sys.stdin.read()
        finally:
            loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=watch_stdin, daemon=True).start()
    async with server:
        await stop.wait()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out_dir")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--starttls", nargs=2, metavar=("CERT", "KEY"))
    p.add_argument("--implicit-tls", nargs=2, metavar=("CERT", "KEY"))
    p.add_argument("--auth", metavar="USER:PASS")
    args = p.parse_args()
    if args.starttls and args.implicit_tls:
        p.error("--starttls and --implicit-tls exclude each other")
    os.makedirs(args.out_dir, exist_ok=True)
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
