"""Filesystem faults as one line a user can act on, the same for every `g2s` command.

cli.main asks the command for its output folders (its module's ``outputs(args)``), checks
them before any work starts (``check_writable``: a read-only mount, a folder of another
user), and turns what still goes wrong under the command into one line (``explain``):

* a full disk or quota (ENOSPC, EDQUOT), raised anywhere: the folder, its free space, how
  much more the step needs (core/disk.py's estimate) and ``RERUN``;
* a read-only or not-writable folder met later (EROFS, EACCES, EPERM): the folder, its owner,
  this process's user, and the fixes;
* Ctrl-C: ``interrupted_line``.

Writers that know their file attach it to the error (``writing``); otherwise the message
names the command's output folder.  The writers leave no temporary files behind (core/atomic.py,
runs.save_run, data_prep/lmdb_build) and every published file appears whole, so a rerun after
freeing space resumes.
"""
from __future__ import annotations

import errno
import os
import pwd
import signal
import stat
from contextlib import contextmanager
from pathlib import Path

from g2s_caffe.core.disk import RERUN, existing_ancestor, free_bytes, human, need_for
from g2s_caffe.core.errors import G2SError

SPACE_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
ACCESS_ERRNOS = (errno.EROFS, errno.EACCES, errno.EPERM)
RESUME = "rerun the same command to resume"


@contextmanager
def writing(path: Path):
    """Name ``path`` as the file being written in an OSError raised inside (a write() on an
    open file names none; a copy names its source, a temporary file its own name)."""
    try:
        yield
    except OSError as e:
        e.filename, e.filename2 = str(path), None
        raise


def disk_full(path: Path, what: str) -> OSError:
    """The error a writer raises for a full disk it learnt of indirectly (LMDB, Caffe)."""
    return OSError(errno.ENOSPC, f"{os.strerror(errno.ENOSPC)} ({what})", str(path))


def fault_of(exc: BaseException) -> OSError | None:
    """The filesystem fault behind ``exc`` (itself, or what it was raised from), if any."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in SPACE_ERRNOS + ACCESS_ERRNOS:
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def explain(exc: BaseException, roots: list[Path]) -> str | None:
    """One line for a filesystem fault under a command writing to ``roots``; None for any other error."""
    fault = fault_of(exc)
    if fault is None:
        return None
    path = Path(os.path.abspath(fault.filename)) if fault.filename else None
    if fault.errno in SPACE_ERRNOS:
        return space_line(path, roots, fault.errno)
    inside = path is None or not roots or _root_of(path, roots) is not None
    return access_line(path or Path(roots[0] if roots else "."), writing=inside)


def _root_of(path: Path, roots: list[Path]) -> Path | None:
    """The deepest of ``roots`` that holds ``path``."""
    holding = [Path(os.path.abspath(r)) for r in roots]
    holding = [r for r in holding if path == r or r in path.parents]
    return max(holding, key=lambda r: len(r.parts), default=None)


def space_line(path: Path | None, roots: list[Path], code: int = errno.ENOSPC) -> str:
    root = _root_of(path, roots) if path else None
    if root is None:
        root = existing_ancestor(path.parent) if path else Path(os.path.abspath(roots[0] if roots else "."))
    where = f" (writing {os.path.relpath(path, root)})" if path and path != root else ""
    kind = "no space left" if code == errno.ENOSPC else "disk quota exceeded"
    need = need_for(path or root)
    if need is None:
        needs = ""
    elif need.more():
        needs = f"; {need.what} needs about {human(need.more())} more"
    else:
        needs = f"; {need.what} needs more than its estimate of {human(need.total)}"
    return f"{kind} in {root}{where}: {human(free_bytes(root))} free{needs}; {RERUN}"


def _user(uid: int) -> str:
    try:
        return f"uid {uid} ({pwd.getpwuid(uid).pw_name})"
    except KeyError:
        return f"uid {uid}"


def access_line(target: Path, writing: bool = True) -> str:
    """Why this process may not write (or read) ``target``, and what to do."""
    target = Path(os.path.abspath(target))
    folder = existing_ancestor(target)
    st = folder.stat()
    uid, gid = os.geteuid(), os.getegid()
    whose = f"{folder} belongs to {_user(st.st_uid)}, mode {stat.filemode(st.st_mode)}; this process runs as " \
            f"{_user(uid)}, gid {gid}"
    if not writing:
        return f"cannot read {target}: {whose}; fix: make it readable by this user"
    if os.statvfs(folder).f_flag & os.ST_RDONLY:
        return (f"cannot write to {target}: {folder} is on a read-only filesystem ({whose}); fix: mount it "
                "read-write (a docker volume without :ro) or choose another output folder")
    create = "" if folder == target else \
        f", or create {target} first as a user who may (mkdir -p; docker makes a missing volume folder root's)"
    return (f"cannot write to {target}: {whose}; fix: run as its owner (docker compose: G2S_UID={st.st_uid} "
            f"G2S_GID={st.st_gid}), or chown -R {uid}:{gid} {folder}{create}")


def check_writable(roots: list[Path]) -> None:
    """Every output folder exists and is writable, or can be created: else a G2SError saying why."""
    for root in roots:
        target = Path(os.path.abspath(root))
        folder = existing_ancestor(target)
        if not folder.is_dir():
            raise G2SError(f"{target}: {folder} is a file, not a folder; choose another output folder")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise G2SError(access_line(target))


def ignore_sigint() -> None:
    """A pool worker's initializer: Ctrl-C is the main process's to handle (a terminal sends
    it to every process of the group), so the pool stops without a traceback from each worker."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def interrupted_line(roots: list[Path]) -> str:
    kept = f"; finished work is kept in {', '.join(str(r) for r in roots)}" if roots else ""
    return f"interrupted: stopped at a safe point{kept}; {RESUME}"
