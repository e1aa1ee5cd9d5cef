"""Replacing an output folder in one step, shared by `training prepare` and `datasets`."""

from __future__ import annotations

import secrets
import shutil
from pathlib import Path


def swap_into_place(staging: Path, out_dir: Path) -> None:
    """Renames the finished `staging` folder to `out_dir`, replacing an earlier one.

    The earlier folder is moved aside first and put back if the rename fails
    (or is interrupted), so `out_dir` is always either the old or the new one.
    """
    if not out_dir.exists():
        staging.rename(out_dir)
        return
    old = out_dir.parent / f".{out_dir.name}.old-{secrets.token_hex(4)}"
    out_dir.rename(old)
    try:
        staging.rename(out_dir)
    except BaseException:
        old.rename(out_dir)
        raise
    shutil.rmtree(old, ignore_errors=True)
