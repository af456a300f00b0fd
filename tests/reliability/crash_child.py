"""A child process that writes something and pauses at a chosen point until it is SIGKILLed.

    python -m tests.reliability.crash_child <scenario> <root> <flag> [model_dir] [port]

Each scenario patches one step of the real write path so that, when the step is reached, the
child writes ``flag`` and waits: the parent then kills it with SIGKILL, exactly there.
"""

from __future__ import annotations

import io
import os
import shutil
import sys
from pathlib import Path

import pyarrow.parquet as pq

from fraud_orchestration import atomic
from fraud_orchestration.resources import model_registry
from fraud_orchestration.resources.endpoint import LocalEndpoint
from fraud_orchestration.resources.feature_store import LocalFeatureStore
from fraud_orchestration.resources.lake import LocalLake
from tests.reliability.support import DAY, pause_here, table


def half_written_parquet(flag: str) -> None:
    """``pq.write_table`` writes half of the file's bytes, then the process stops there."""

    def write_half(data, where, **kwargs) -> None:
        buffer = io.BytesIO()
        real_write_table(data, buffer, **kwargs)
        content = buffer.getvalue()
        with open(where, "wb") as handle:
            handle.write(content[: len(content) // 2])
            handle.flush()
            os.fsync(handle.fileno())
        pause_here(flag)

    real_write_table = pq.write_table
    pq.write_table = write_half


def stop_before_replace(flag: str, suffix: str) -> None:
    """The temporary file is complete; the process stops before renaming it into place."""
    real_replace = os.replace

    def replace(src, dst) -> None:
        if str(dst).endswith(suffix):
            pause_here(flag)
        real_replace(src, dst)

    atomic.os.replace = replace


def main(scenario: str, root: str, flag: str, *extra: str) -> None:
    home = Path(root)
    if scenario in ("lake-partial", "lake-rename"):
        if scenario == "lake-partial":
            half_written_parquet(flag)
        else:
            stop_before_replace(flag, "data.parquet")
        LocalLake(root=root).write_partition("raw_transactions", DAY, table(2))
    elif scenario in ("offline-partial", "offline-rename"):
        if scenario == "offline-partial":
            half_written_parquet(flag)
        else:
            stop_before_replace(flag, "data.parquet")
        frame = table(2).to_pandas().assign(tx_datetime=lambda f: f["transaction_id"])
        LocalFeatureStore(root=str(home / "feature_store")).write_offline(DAY, frame)
    elif scenario.startswith("registry-"):
        store = model_registry.LocalRegistryStore(home / "registry")
        if scenario == "registry-copy":  # the staging folder holds one file of two
            real_copy = shutil.copyfile

            def copy_then_pause(src, dst):
                real_copy(src, dst)
                pause_here(flag)

            model_registry.shutil.copyfile = copy_then_pause
        elif scenario == "registry-folder":  # the version folder is in place, not the index
            real_rename = os.rename

            def rename_then_pause(src, dst):
                real_rename(src, dst)
                pause_here(flag)

            model_registry.os.rename = rename_then_pause
        else:  # registry-index, registry-approve: the new index is written, not renamed
            stop_before_replace(flag, "index.json")
        if scenario == "registry-approve":
            store.approve(2, "approved by the crashing child")
        else:
            store.register(extra[0], metrics={"auc_roc": 0.9})
    elif scenario == "endpoint-record":  # the service switched; the state file is not renamed
        stop_before_replace(flag, "last_deployment.json")
        LocalEndpoint(home=root, port=int(extra[1])).deploy(2, Path(extra[0]))
    else:
        raise SystemExit(f"unknown scenario {scenario}")
    raise SystemExit("the scenario finished without pausing")


if __name__ == "__main__":
    main(*sys.argv[1:])
