"""Keep the sandbox state in a JSON file across restarts."""

from __future__ import annotations

import json
import os
import tempfile
import threading
from pathlib import Path

from .state import SandboxState

__all__ = ["StateFile"]


class StateFile:
    """A JSON snapshot of a `SandboxState`, replaced atomically on each save."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._saved_revision: int | None = None

    def load_into(self, state: SandboxState) -> bool:
        """Restore `state` from the file; False when there is no file yet."""
        if not self.path.exists():
            return False
        data = json.loads(self.path.read_text(encoding="utf-8"))
        state.restore(data)
        with self._lock:
            self._saved_revision = state.revision
        return True

    def save(self, state: SandboxState) -> bool:
        """Write the state if it changed since the last save; True if written."""
        with self._lock:
            if state.revision == self._saved_revision:
                return False
            revision, data = state.snapshot()

            # Write beside the target, then rename: a crash leaves either the old
            # file or the new one, never half of one.
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle, temp_name = tempfile.mkstemp(
                prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent
            )
            try:
                with os.fdopen(handle, "w", encoding="utf-8") as temp:
                    json.dump(data, temp, separators=(",", ":"))
                    temp.flush()
                    os.fsync(temp.fileno())
                os.replace(temp_name, self.path)
            except BaseException:
                Path(temp_name).unlink(missing_ok=True)
                raise
            self._saved_revision = revision
            return True
