"""`pscl app`: the page to annotate, train, inspect, correct and export (the optional ``app`` extra)."""
from __future__ import annotations

import socket
from pathlib import Path

import typer

from pscl.cli.common import app, console, errors_exit
from pscl.errors import DataError


@app.command("app")
@errors_exit
def app_command(folder: Path = typer.Argument(..., help="a folder of micrographs, or a dataset folder"),
                host: str = typer.Option("127.0.0.1", help="address to serve on; any other than this machine's "
                                                           "loopback requires the token printed in the URL"),
                port: int = typer.Option(8765, help="port (0: any free one)"),
                profile: str = typer.Option("cpu", help="the Train button's budget: cpu (the measured default, "
                                                        "minutes on 2 cores), quick (a first look) or smoke")) -> None:
    """Serve the page on FOLDER: stroke classes on micrographs, train, see every segmentation, correct, export."""
    try:
        import uvicorn

        from pscl.app.server import PROFILES, make_app
    except ImportError as exc:
        raise DataError(f"pscl app needs the app extra ({exc.name} is missing): pip install 'pscl[app]'") from None
    from pscl.app.security import is_loopback, new_token
    from pscl.lock import folder_lock
    if profile not in PROFILES:
        raise DataError(f"--profile {profile}: one of {', '.join(PROFILES)}")
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder")
    if not 0 <= port < 65536:
        raise DataError(f"--port {port}: give 0..65535")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:  # a clear error before anything starts
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise DataError(f"--host {host} --port {port}: cannot serve there ({exc.strerror})") from None
        port = probe.getsockname()[1]
    token = None if is_loopback(host) else new_token()
    with folder_lock(folder / ".pscl", option=str(folder)):  # one page server per folder
        server = make_app(folder, token, profile)
        shown = f"[{host}]" if ":" in host else host
        console.print(f"pscl app on {folder}: http://{shown}:{port}/" + (f"?token={token}" if token else ""),
                      highlight=False, soft_wrap=True)
        uvicorn.run(server, host=host, port=port, log_level="warning")
