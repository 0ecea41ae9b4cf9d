"""How fast `pscl app` serves the tiles of a large micrograph: the first tile (which builds the level images),
then every tile of a screen at full resolution and at the level that shows the whole micrograph.

Usage: python benchmarks/scripts/app_tiles.py OUT.json [SIZE ...]   (default sizes 4000 10000)
The micrograph is random 8-bit noise written as PNG in a temporary folder (content does not change the cost).
"""
from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from starlette.testclient import TestClient

from pscl.app.server import make_app
from pscl.app.tiles import TILE, levels_for
from pscl.provenance import provenance


def measure(size: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        Image.fromarray(np.random.default_rng(0).integers(0, 256, (size, size), dtype=np.uint8)).save(Path(tmp) / "big.png")
        client = TestClient(make_app(tmp), base_url="http://127.0.0.1")
        start = time.perf_counter()
        assert client.get("/api/tile/image/big/0/0/0").status_code == 200
        first = time.perf_counter() - start
        top = levels_for(size, size) - 1
        times = {}
        for name, level, count in (("full resolution, a 1536 x 1024 screen", 0, (6, 4)), ("whole micrograph", top, (1, 1))):
            start = time.perf_counter()
            for ty in range(count[1]):
                for tx in range(count[0]):
                    assert client.get(f"/api/tile/image/big/{level}/{tx + 3}/{ty + 3}" if level == 0 else
                                      f"/api/tile/image/big/{level}/0/0").status_code == 200
                    client.get(f"/api/tile/mask/big/{level}/{tx}/{ty}")
            times[name] = round((time.perf_counter() - start) / (count[0] * count[1]) * 1000, 1)
        return {"size": size, "levels": top + 1, "tile": TILE, "first_tile_s": round(first, 2),
                "ms_per_image_and_mask_tile": times}


if __name__ == "__main__":
    sizes = [int(s) for s in sys.argv[2:]] or [4000, 10000]
    result = {"runs": [measure(s) for s in sizes], "provenance": provenance()}
    Path(sys.argv[1]).write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
