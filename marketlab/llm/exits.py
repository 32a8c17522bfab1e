"""How a process ended, in words a learner can act on (the model server, the engine's self-test).

`Popen.returncode` says -4 when a child died on signal 4; people need "illegal instruction (signal 4):
the compiled engine uses an instruction this processor cannot run" and the command that fixes it.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass

# Signals that mean the compiled engine itself faulted, not that someone stopped it.
_ENGINE_FAULTS = {signal.SIGILL, signal.SIGSEGV, signal.SIGBUS, signal.SIGFPE, signal.SIGABRT}
_MEANING = {
    signal.SIGILL: "the compiled engine uses an instruction this processor cannot run",
    signal.SIGSEGV: "the engine crashed (a memory fault)",
    signal.SIGBUS: "the engine crashed (a bus error, often a damaged or truncated model file)",
    signal.SIGFPE: "the engine crashed (an arithmetic fault)",
    signal.SIGABRT: "the engine aborted (often: out of memory, or a damaged installation)",
    signal.SIGKILL: "it was killed (often: the machine ran out of memory, or someone ran kill -9)",
    signal.SIGTERM: "it was asked to stop",
    signal.SIGINT: "it was interrupted (Ctrl-C)",
    signal.SIGHUP: "its terminal closed",
}
# The one command that rebuilds the portable engine (run in the marketlab folder).
REBUILD_COMMAND = "make engine"


@dataclass(frozen=True)
class Ending:
    """A process's end: its exit code, or the signal that killed it."""

    returncode: int

    @property
    def signal(self) -> int | None:
        """The number of the signal that killed the process, if one did."""
        return -self.returncode if self.returncode < 0 else None

    @property
    def signal_name(self) -> str:
        """"illegal instruction" for signal 4 (the C library's wording, lower case)."""
        if self.signal is None:
            return ""
        try:
            described = signal.strsignal(self.signal) or ""
        except ValueError:
            described = ""
        return (described.split(":")[0] or f"signal {self.signal}").lower()

    @property
    def requested(self) -> bool:
        """Stopped on purpose (SIGTERM or SIGINT, as `marketlab serve --stop` and Ctrl-C do) or exited 0."""
        return self.returncode == 0 or self.signal in (signal.SIGTERM, signal.SIGINT)

    @property
    def engine_fault(self) -> bool:
        """The engine itself faulted: rebuilding or reinstalling it is the fix."""
        return self.signal in _ENGINE_FAULTS

    def describe(self) -> str:
        """"illegal instruction (signal 4)" or "exit code 1"."""
        if self.signal is None:
            return f"exit code {self.returncode}"
        return f"{self.signal_name} (signal {self.signal})"

    def meaning(self) -> str:
        """What the end means, in plain words ("" where the exit code says nothing more)."""
        if self.signal is None:
            return "" if self.returncode else "it finished normally"
        try:
            return _MEANING.get(signal.Signals(self.signal), "")
        except ValueError:
            return ""

    def sentence(self) -> str:
        """"illegal instruction (signal 4): the compiled engine uses an instruction this processor cannot run"."""
        meaning = self.meaning()
        return f"{self.describe()}: {meaning}" if meaning else self.describe()

    def fix(self, checkout: str | None = None, rebuild: str = REBUILD_COMMAND) -> str:
        """What to do about it (`rebuild`: the command that replaces the installed engine)."""
        where = f"in {checkout}" if checkout else "in the marketlab folder"
        if self.signal == signal.SIGILL:
            return (f"Rebuild the portable engine: run `{rebuild}` {where} (about 5 minutes), "
                    "then run the cell (or the command) again.")
        if self.engine_fault:
            return (f"Rebuild the engine: run `{rebuild}` {where}; if it happens again, run "
                    "`marketlab doctor` and show its output to your instructor.")
        if self.signal == signal.SIGKILL:
            return ("Close other heavy programs (or give the machine more memory), "
                    "then run the cell (or the command) again.")
        if self.requested:
            return "Run the cell (or the command) again: the model starts by itself."
        return "Run `marketlab doctor`; the last lines of the server's log (see `marketlab serve --status`) say more."
