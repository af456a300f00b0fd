"""The real scoring service process, with two fault hooks driven by files (not timing):

``RELIABILITY_FAIL_FLAG``   while this file exists, every model prediction raises (a model
                            that breaks in production: the rules must answer instead).
``RELIABILITY_PAUSE_VERSION`` + ``RELIABILITY_PAUSE_FLAG``  loading that version stops after
                            the model is read and before the switch; the flag tells the
                            test, which then SIGKILLs the process mid-deployment.

    python -m tests.reliability.faulty_server <fraud_orchestration.serving.server arguments>

The hooks go into the scoring process too, where the model runs: ``multiprocessing`` spawns
it by importing this module as ``__mp_main__``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from fraud_orchestration.serving import app, server
from fraud_orchestration.serving.model import ModelSlot
from tests.reliability.support import pause_here


def install_hooks() -> None:
    fail_flag = os.environ.get("RELIABILITY_FAIL_FLAG")
    if fail_flag:
        real_predict = ModelSlot.predict

        def predict(self, values):
            if Path(fail_flag).exists():
                raise RuntimeError("injected model failure")
            return real_predict(self, values)

        ModelSlot.predict = predict
    pause_version = os.environ.get("RELIABILITY_PAUSE_VERSION")
    if pause_version:
        real_smoke_test = app.smoke_test

        def smoke_test(slot, *args, **kwargs):
            if slot.version == pause_version:
                pause_here(os.environ["RELIABILITY_PAUSE_FLAG"])
            return real_smoke_test(slot, *args, **kwargs)

        app.smoke_test = smoke_test


if __name__ == "__main__":
    install_hooks()
    raise SystemExit(server.main(sys.argv[1:]))
elif __name__ == "__mp_main__":  # the server's scoring process, spawned from this module
    install_hooks()
