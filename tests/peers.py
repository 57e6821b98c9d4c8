"""Where the peer notebooks are: the ipywidgets docs examples kept beside the project.

`NBFREEZE_PEERS` names the folder; otherwise `../shared/peers/ipywidgets` beside the
checkout, or the workplace's copy when the checkout lives elsewhere (a fresh CI clone).
"""

from __future__ import annotations

import os
from pathlib import Path

_CANDIDATES = [
    Path(__file__).resolve().parents[2] / "shared" / "peers" / "ipywidgets",
    Path("/work/shared/peers/ipywidgets"),
]


def peers_dir() -> Path:
    """The folder of peer notebooks (it may be missing; the tests that need it say so)."""
    named = os.environ.get("NBFREEZE_PEERS")
    if named:
        return Path(named)
    return next((p for p in _CANDIDATES if p.is_dir()), _CANDIDATES[0])


PEERS = peers_dir()
