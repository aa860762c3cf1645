"""A bound on request bodies: a 413 naming the limit, whether the body announces its length or streams it.

Uploads have their own, larger bound (EPOCHSCOPE_UPLOAD_MAX_BYTES), enforced as the file streams to the store,
so their path is exempt here.
"""

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from epochscope_api.openai_compat.errors import OpenAIError


class BodyTooLarge(Exception):
    """Raised from `receive` once a streamed body passes the limit. FastAPI wraps it in its 400 "error parsing the
    body"; http_errors answers that with this 413 instead."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(f"the request body exceeds the limit of {max_bytes} bytes")


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int, exempt: frozenset[tuple[str, str]]) -> None:
        """`exempt`: (method, path) pairs with a bound of their own."""
        self.app = app
        self.max_bytes = max_bytes
        self.exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (scope["method"], scope["path"]) in self.exempt:
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, send)
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def watching_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, watching_send)
        except BodyTooLarge:
            if not started:
                await self._refuse(scope, send)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        message = str(BodyTooLarge(self.max_bytes))
        error = OpenAIError(413, message) if scope["path"].startswith("/openai/") else None
        body = json.dumps(error.body() if error else {"detail": message}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})
