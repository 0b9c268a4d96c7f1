"""The job functions, by name: the same ones run under arq and in-process."""

from __future__ import annotations

from collections.abc import Mapping

from receiver.jobs.process import process_event
from receiver.jobs.reenrich import reenrich_event
from receiver.pipeline.deliver import deliver
from receiver.queue import JobFunction

JOB_FUNCTIONS: Mapping[str, JobFunction] = {
    "process_event": process_event,
    "deliver": deliver,
    "reenrich_event": reenrich_event,
}
