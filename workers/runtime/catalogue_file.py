"""The catalogue file as it is now: reread when it changes, the last valid one kept otherwise.

Rights (deployers, approvers, channel) are read from the catalogue on every command and click,
so an edit of the file takes effect at the next one in both processes, without a restart. A
stat per access is the whole cost while the file is unchanged.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

from workers.domain.catalogue import Catalogue, ConfigError, load_catalogue
from workers.runtime.settings import load_settings

log = logging.getLogger(__name__)

#: What tells a changed file: a rename-over gives a new inode, an edit a new mtime or size.
Stamp = tuple[int, int, int]


class CatalogueFile:
    """Callable returning the catalogue; the file is read again when its stamp changes.

    An invalid or unreadable new file keeps the previous catalogue in force and is logged as an
    error once per version of the file; without a previous one the ConfigError is raised.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        load: Callable[[Path], Catalogue] = load_catalogue,
    ) -> None:
        self._given = path
        self._load = load
        self._lock = threading.Lock()
        self._stamp: Stamp | None = None
        self._current: Catalogue | None = None
        self._error: ConfigError | None = None
        #: The stamp of a new file that failed to load, so that it is logged only once.
        self._refused: Stamp | None = None

    @property
    def path(self) -> Path:
        # Read at each access, so a test's CANARY_CONFIG applies.
        return Path(self._given or load_settings().canary_config)

    @property
    def problem(self) -> str | None:
        """Why the file on disk is not the catalogue in force (None when it is)."""
        with self._lock:
            return str(self._error) if self._error else None

    def __call__(self) -> Catalogue:
        path = self.path
        try:
            info = path.stat()
            stamp: Stamp | None = (info.st_ino, info.st_mtime_ns, info.st_size)
        except OSError:
            stamp = None
        with self._lock:
            if self._current is not None and stamp is not None and stamp == self._stamp:
                return self._current
            if self._current is not None and stamp is not None and stamp == self._refused:
                return self._current
            try:
                catalogue = self._load(path)
            except ConfigError as exc:
                return self._keep(exc, stamp)
            if self._current is not None:
                log.info("catalogue %s reloaded: %d services", path, len(catalogue.services))
            self._current, self._stamp, self._error, self._refused = catalogue, stamp, None, None
            return catalogue

    def _keep(self, error: ConfigError, stamp: Stamp | None) -> Catalogue:
        """The previous catalogue (or the error when there is none), logged once per file."""
        if self._current is None:
            raise error
        if self._error is None or stamp != self._refused:
            log.error("catalogue not reloaded, the previous one stays in force: %s", error)
        self._error, self._refused = error, stamp
        return self._current
