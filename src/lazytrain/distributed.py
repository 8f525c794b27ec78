"""Leaving the process group a DDP rank joined, before the interpreter shuts down.

Lightning destroys the default process group at exit only for NCCL. A gloo group (DDP on CPUs)
otherwise lives into interpreter finalization, where gloo's worker threads drop tensors that hold
Python references and need the GIL of an interpreter that is going away: now and then a fit that
finished aborts on its way out with ``terminate called without an active exception`` (SIGABRT,
pytorch#179291). Destroying the group while the interpreter is whole joins those threads first.
"""

from __future__ import annotations

import atexit

import torch

_registered = False


def leave_process_group() -> None:
    """Destroy the default process group, if this process is in one."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def leave_process_group_at_exit() -> None:
    """Make sure :func:`leave_process_group` runs before this process's interpreter shuts down
    (once per process, whatever the backend; a group already left is a no-op). Called in every
    rank, ``ddp_spawn``'s workers included, once its process group exists."""
    global _registered
    if not _registered:
        atexit.register(leave_process_group)
        _registered = True
