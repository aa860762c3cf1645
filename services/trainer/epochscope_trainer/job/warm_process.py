"""`python -m epochscope_trainer.job.warm_process --control-fd N MODULE`: the warm process jobs' children fork from.

It imports MODULE (the job runner: torch, transformers, TRL, peft, ~5 CPU-seconds) once, then forks one child per
job the trainer asks for, so each job pays a fork instead of the imports (as multiprocessing's forkserver does with
its preload). The forked child returns from `serve` and runs `MODULE.main(["--job-dir", ...])` as a fresh
`python -m MODULE` would, exiting through the interpreter as usual.

It starts with a child's environment (`child_protocol.worker_env`) and never holds a job's identity: the forked child
takes it from the job folder (`child_protocol.take_identity`). It is not dumpable, so a job's code cannot read or
change it to reach a later job; each child is made dumpable again, as an exec'd process is.

The trainer speaks over a Unix SOCK_SEQPACKET socket: a request is the job folder, with two descriptors passed
along, the job's own socket and its log file (the child's stdout and stderr). The answer, on the job's socket: the
child's pid with a pidfd (the trainer signals that process, never a reused pid), then its exit code once it has been
reaped; the socket closes without a code if this process dies. Single-threaded, blocked in select while idle. It dies
with the trainer (PR_SET_PDEATHSIG, set before exec) and exits when the trainer closes the socket; each child gets
SIGTERM (a shutdown) when this process dies.
"""

import argparse
import importlib
import json
import os
import selectors
import signal
import socket
import sys
from pathlib import Path
from types import ModuleType

from epochscope_trainer.child_protocol import WARM_READY, ChildExit, take_identity
from epochscope_trainer.process_control import set_dumpable, stop_with_parent

REQUEST_MAX_BYTES = 8192


class Forker:
    """Serves the trainer's requests; returns in a forked child only, with its job folder."""

    def __init__(self, control: socket.socket) -> None:
        self.control = control
        self.selector = selectors.DefaultSelector()
        self.selector.register(control, selectors.EVENT_READ)

    def serve(self) -> Path | None:
        """The job folder, in a forked child; None in this process once the trainer has closed the socket."""
        while True:
            for key, _ in self.selector.select():
                if key.fileobj is not self.control:
                    self._reap(key)
                    continue
                message, fds, _flags, _address = socket.recv_fds(self.control, REQUEST_MAX_BYTES, 2)
                if not message:
                    return None
                job_dir = Path(json.loads(message)["job_dir"])
                if self._fork(socket.socket(fileno=fds[0]), fds[1]):
                    return job_dir

    def _fork(self, channel: socket.socket, log_fd: int) -> bool:
        """True in the child (its stdout and stderr the job's log), False here."""
        sys.stdout.flush()
        sys.stderr.flush()
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:
            self._leave(channel)
            _become_job(log_fd, parent)
            return True
        os.close(log_fd)
        pidfd = os.pidfd_open(pid)
        try:
            socket.send_fds(channel, [str(pid).encode()], [pidfd])
        except OSError:  # the trainer is gone: nobody would supervise the child
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        self.selector.register(pidfd, selectors.EVENT_READ, (pid, channel))
        return False

    def _reap(self, key: selectors.SelectorKey) -> None:
        """A child has exited: its exit code to the trainer (negative: the signal that ended it)."""
        pid, channel = key.data
        _, status = os.waitpid(pid, 0)
        try:
            channel.send(str(os.waitstatus_to_exitcode(status)).encode())
        except OSError:
            pass  # the trainer is gone
        self.selector.unregister(key.fd)
        os.close(key.fd)
        channel.close()

    def _leave(self, channel: socket.socket) -> None:
        """In the child: close what serves the trainer and the other jobs (their sockets and pidfds)."""
        for key in list(self.selector.get_map().values()):
            if key.data is not None:
                key.data[1].close()
                os.close(key.fd)
        self.selector.close()
        self.control.close()
        channel.close()


def _become_job(log_fd: int, parent: int) -> None:
    """In the child: the job's log as stdout and stderr; SIGTERM when the warm process dies; dumpable, and SIGINT
    a KeyboardInterrupt again, as in a process of its own."""
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    stop_with_parent()
    if os.getppid() != parent:  # the warm process died before the line above
        os._exit(ChildExit.INTERRUPTED)
    set_dumpable(True)
    signal.signal(signal.SIGINT, signal.default_int_handler)


def run_job(module: ModuleType, job_dir: Path) -> None:
    """In the child: the job, with its identity in the environment, as `python -m MODULE --job-dir DIR` runs it."""
    os.environ.update(take_identity(job_dir))
    sys.argv = [module.__file__ or module.__name__, "--job-dir", str(job_dir)]
    module.main(sys.argv[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--control-fd", type=int, required=True)
    parser.add_argument("module", help="imported once; each child runs its main(argv)")
    args = parser.parse_args()
    set_dumpable(False)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the trainer decides when this process stops
    control = socket.socket(fileno=args.control_fd)
    module = importlib.import_module(args.module)
    control.send(WARM_READY)
    job_dir = Forker(control).serve()
    if job_dir is not None:
        run_job(module, job_dir)


if __name__ == "__main__":
    main()
