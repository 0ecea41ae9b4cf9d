"""Who may talk to the page's server, and what an upload may be.

* Bound to a loopback address, the server answers only requests whose ``Host`` names a loopback
  address (a web page elsewhere cannot reach it through DNS rebinding).
* Bound to any other address, every request must carry the token printed once in the URL: as the
  ``token`` query parameter (the first page load, which then sets a same-site cookie), the cookie, or
  the ``X-Pscl-Token`` header.
* Every request that changes something must carry the ``X-Pscl: 1`` header, which a form or a
  script of another site cannot send without the server's consent (it gives none).
* Uploads: a file name without folders, of an image type, not starting with a dot, new to the folder;
  at most :data:`MAX_UPLOAD_BYTES`; the image's size read from its header before it is decoded, at most
  :data:`MAX_UPLOAD_PIXELS` (a small file that decodes to gigabytes is refused unread).
"""
from __future__ import annotations

import hmac
import secrets
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import parse_qs

from pscl.data.io import IMAGE_SUFFIXES
from pscl.errors import DataError

LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")
COOKIE = "pscl_token"
MAX_UPLOAD_BYTES = 512 * 2 ** 20
MAX_UPLOAD_PIXELS = 150_000_000  # below the 179 million at which Pillow refuses to decode
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def is_loopback(host: str) -> bool:
    return host in LOOPBACK or host.startswith("127.")


def new_token() -> str:
    return secrets.token_urlsafe(24)


def _host_name(value: str) -> str:
    if value.startswith("["):
        return value[:value.find("]") + 1]
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


class Guard:
    """ASGI middleware enforcing the rules of the module doc on every HTTP request."""

    def __init__(self, app, token: str | None):
        self.app, self.token = app, token

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        problem = self.problem(scope, headers)
        if problem:
            body = problem.encode()
            await send({"type": "http.response.start", "status": 403,
                        "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                                    (b"content-length", str(len(body)).encode())]})
            return await send({"type": "http.response.body", "body": body})
        return await self.app(scope, receive, send)

    def problem(self, scope, headers: dict) -> str | None:
        if self.token is None:
            if not is_loopback(_host_name(headers.get("host", ""))):
                return "this server answers requests to 127.0.0.1 / localhost only"
        else:
            query = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token", [""])[0]
            cookie = SimpleCookie(headers.get("cookie", ""))
            given = [query, headers.get("x-pscl-token", ""), cookie[COOKIE].value if COOKIE in cookie else ""]
            if not any(g and hmac.compare_digest(g, self.token) for g in given):
                return "missing or wrong token: open the URL the server printed"
        if scope["method"] not in SAFE_METHODS and headers.get("x-pscl") != "1":
            return "requests that change something must come from the page (X-Pscl header)"
        return None


def upload_name(name: str, existing: set[str]) -> str:
    """``name`` if it is a safe new image file name (module doc), else a DataError saying why."""
    if not name or name != Path(name).name or "/" in name or "\\" in name or name in (".", ".."):
        raise DataError(f"{name!r}: give a file name without folders")
    if name.startswith(".") or any(ord(c) < 32 for c in name):
        raise DataError(f"{name!r}: the name may not start with a dot or hold control characters")
    if Path(name).suffix.lower() not in IMAGE_SUFFIXES:
        raise DataError(f"{name!r}: not an image type ({', '.join(IMAGE_SUFFIXES)})")
    if Path(name).stem in existing:
        raise DataError(f"{name!r}: the folder already holds a micrograph named {Path(name).stem!r}")
    return name


def check_upload(path: Path) -> tuple[int, int]:
    """(width, height) of an uploaded image file, read from its header; refuses what is not a readable
    image or has more than :data:`MAX_UPLOAD_PIXELS` pixels, before decoding it."""
    from PIL import Image
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile
            with tifffile.TiffFile(path) as tif:
                shape = tif.series[0].shape
            height, width = int(shape[0]), int(shape[1])
        else:
            with Image.open(path) as image:
                width, height = image.size
    except Exception as exc:  # noqa: BLE001 (any decoder error: the file is not an image we can read)
        raise DataError(f"{path.name}: not a readable image ({type(exc).__name__})") from None
    if width * height > MAX_UPLOAD_PIXELS:
        raise DataError(f"{path.name}: {width}x{height} px is more than the {MAX_UPLOAD_PIXELS // 10 ** 6} million "
                        "pixels an upload may have (copy such files into the folder instead)")
    from pscl.data.io import read_image
    try:
        read_image(path)
    except DataError as exc:
        raise DataError(f"{path.name}: {exc}") from None
    return width, height


__all__ = ["COOKIE", "Guard", "MAX_UPLOAD_BYTES", "check_upload", "is_loopback", "new_token", "upload_name"]
