# Only for running the suite under libfaketime 0.9.10 with FAKETIME_DONT_FAKE_MONOTONIC=1:
# its clock_nanosleep wrapper returns EINVAL for Python's absolute monotonic sleeps.
import os
import select
import time

if os.environ.get("FAKETIME_DONT_FAKE_MONOTONIC") == "1":
    def _sleep(seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            select.select([], [], [], left)
    time.sleep = _sleep
