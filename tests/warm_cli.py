"""A warm start for the tests' CLI runs: a server process that has imported torch, Lightning,
Hydra and lazytrain once, and forks a fresh child for each ``scripts/*.py`` command.

Each child is a new process that runs the real script as ``__main__`` with the real argv, working
directory and environment, exits through the normal interpreter shutdown (threads joined, atexit,
logging flushed), and reports its exit status as ``subprocess`` does — only the ~6 s of imports a
fresh interpreter spends on this 2-core machine are skipped. Tests of what a fresh interpreter
does (start-up time, signals sent from outside, DDP's re-launch) start real subprocesses instead.

    python tests/warm_cli.py SOCKET     # serves until killed; one command at a time
"""

from __future__ import annotations

import json
import os
import runpy
import signal
import socket
import sys


def preload() -> None:
    """What every script imports anyway; nothing here starts a thread or runs a torch op."""
    import lightning  # noqa: F401
    import torchvision.datasets.mnist  # noqa: F401
    from hydra.core.plugins import Plugins

    import lazytrain.compare  # noqa: F401
    import lazytrain.evaluate  # noqa: F401
    import lazytrain.job  # noqa: F401

    Plugins.instance()  # Hydra's plugin scan, once


def run_child(conn: socket.socket, listener: socket.socket) -> None:
    """In the forked child: become the command, run it, exit as a script exits."""
    listener.close()
    request = json.loads(conn.makefile().readline())
    conn.close()
    os.setpgid(0, 0)  # the command's own process group, as a fresh `subprocess` child has none
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    out = os.open(request["stdout"], flags)
    err = out if request["merge"] else os.open(request["stderr"], flags)
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    os.dup2(out, 1)
    os.dup2(err, 2)
    signal.alarm(int(request["timeout"]))
    sys.argv = [request["script"], *request["args"]]
    runpy.run_path(request["script"], run_name="__main__")  # its SystemExit ends this process


def serve(listener: socket.socket) -> None:
    while True:
        conn, _ = listener.accept()
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            run_child(conn, listener)
            return
        _, status = os.waitpid(pid, 0)
        conn.sendall(f"{os.waitstatus_to_exitcode(status)}\n".encode())
        conn.close()


def main() -> None:
    preload()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(sys.argv[1])
    listener.listen()
    print("ready", flush=True)
    serve(listener)


if __name__ == "__main__":
    main()
