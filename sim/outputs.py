"""Writing outputs so that nothing is ever half-written: temp file or folder, then rename.

* :func:`check_output_file` / :func:`check_output_dir` check an output path before any work starts
  (a writable folder, not a folder where a file goes or the reverse, a known extension, every name
  along it within the 255 bytes a file name may have).
* :func:`atomic_write` and :func:`owned_outputs` write to ``.NAME.PID.XXXXXXXX`` beside the target
  and rename it into place (a folder that several commands share: each replaces only its own
  files); on any error or interruption (SIGINT, and SIGTERM once ``twin`` has installed its
  handler, see ``sim.cli.main``) the temporary is removed. Signals are held back while the
  temporary is created and while it is renamed, so an interruption never strands one.
* Temporaries of processes that no longer exist (killed with SIGKILL, a power cut) are removed by
  the next write to the same name.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sim.errors import ScenarioError, TwinError, one_printable_line, shown

PLOT_SUFFIXES = (".png", ".svg", ".pdf")
_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
LEGACY_STALE_S = 3600.0  # temp folders of older twins (no PID in the name) older than this are removed
NAME_BYTES = 255  # the longest file or folder name most file systems take (NAME_MAX)


@contextmanager
def signals_held() -> Iterator[None]:
    """Hold SIGINT/SIGTERM/SIGHUP back for the block (delivered right after it)."""
    try:
        old = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    except (AttributeError, OSError, ValueError):  # pragma: no cover - platforms without sigmask
        yield
        return
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _umask_mode(mode: int) -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mode & ~mask


# a temporary's name keeps this many bytes of its file's: ``.NAME.PID.XXXXXXXX.suffix`` stays within the 255
# bytes a file name may have, whatever the output's own (a valid name of 240 characters failed)
TEMP_NAME_CHARS = 160


def _short(name: str) -> str:
    """The first :data:`TEMP_NAME_CHARS` bytes of ``name`` (a character cut in two left out)."""
    return os.fsencode(name)[:TEMP_NAME_CHARS].decode("utf-8", errors="ignore")


def _prefix(name: str) -> str:
    return f".{_short(name)}.{os.getpid()}."


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def clean_stale(folder: Path, name: str, suffix: str = "") -> list[Path]:
    """Remove temporaries ``.NAME.PID.XXXXXXXX[suffix]`` in ``folder`` whose process is gone (and
    ``.NAME.XXXXXXXX`` folders of older twins, after an hour). Returns what was removed."""
    ours = re.compile(rf"^\.{re.escape(_short(name))}\.(\d+)\.[A-Za-z0-9_]{{8}}{re.escape(suffix)}$")
    legacy = re.compile(rf"^\.{re.escape(name)}\.[a-z0-9_]{{8}}{re.escape(suffix)}$")
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        m = ours.match(entry.name)
        try:
            stale = (m is not None and not _alive(int(m.group(1)))) or (
                legacy.match(entry.name) is not None
                and now - entry.stat(follow_symlinks=False).st_mtime > LEGACY_STALE_S
            )
            if not stale:
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                os.unlink(entry.path)
            removed.append(Path(entry.path))
        except OSError:
            continue
    return removed


def _writable_folder(path: Path, flag: str, target: Path | None = None) -> None:
    """The nearest existing folder at or above ``path`` must be a folder we can create files in;
    ``target`` (the file that goes in ``path``, else ``path``) is the one a refusal says is not written."""
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():  # (-o notes.parquet/r.parquet said "cannot write notes.parquet")
        raise ScenarioError(flag, f"{probe} is a file, not a folder; cannot write {target or path}")
    try:
        fd, name = tempfile.mkstemp(prefix=".twin-probe.", dir=probe)
        os.close(fd)
        os.unlink(name)
    except OSError as err:
        raise ScenarioError(flag, f"cannot write in {probe}: {err.strerror or err}") from None


def _names_fit(path: Path, flag: str) -> None:
    """Every name along ``path`` within the :data:`NAME_BYTES` a file or folder name may have (a longer
    one was the system's ``File name too long``, naming no flag, from the first look at it)."""
    for part in path.parts:
        size = len(os.fsencode(part))
        if size > NAME_BYTES:
            shown = part if len(part) <= 40 else f"{part[:20]}...{part[-12:]}"
            raise ScenarioError(
                flag,
                f"{shown!r} is {size:,} bytes, over the {NAME_BYTES} a file or folder name may have; "
                "give a shorter name",
            )


def check_name_fits(name: str, folder: Path, goes: str, file: str, suffix: str = "", instead: str = "") -> None:
    """A scenario's ``name`` names the folder ``folder/<name><suffix>/`` its outputs go to: a name that
    makes it longer than :data:`NAME_BYTES` is refused naming the key before anything runs (it was ``File
    name too long`` once all had run, an empty ``folder`` left). ``goes``: what goes there, for the line;
    ``instead``: another way out than a shorter name (``-o DIR``)."""
    size = len(os.fsencode(name + suffix))
    if size > NAME_BYTES:
        added = f" with {suffix!r}" if suffix else ""
        raise ScenarioError(
            "name",
            f"{size:,} bytes{added}, too long for the folder {folder}/<name>{suffix}/ {goes} (a file name has at "
            f"most {NAME_BYTES} bytes); give a shorter name" + (f" or {instead}" if instead else ""),
            file,
        )


def a_link(path: Path) -> str:
    """Why a file twin writes may not be the link ``path`` (one line): written beside it and renamed onto
    it, the link would become a plain file, its target left as it was."""
    target = one_printable_line(os.readlink(path))
    return f"a link (to {target}); twin does not write through links: give the file itself"


def check_output_file(path: str | Path | None, flag: str, suffixes: tuple[str, ...] | None = None) -> None:
    """Before work starts: ``path`` can be written as a file (``flag`` names it in errors)."""
    if path is None:
        return
    text = str(path)
    path = Path(path)
    if not text or text.endswith(("/", os.sep)) or path.name in ("", ".", ".."):
        raise ScenarioError(flag, f"give a file name, got {text!r}")
    _names_fit(path, flag)
    if path.is_symlink():  # (written beside it and renamed onto it, the link became a plain file)
        raise ScenarioError(flag, f"{one_printable_line(str(path))} is {a_link(path)}")
    if path.is_dir():
        raise ScenarioError(flag, f"{path} is a folder; give a file name")
    if path.exists() or path.is_symlink():
        try:
            mode = os.stat(path).st_mode
        except OSError as err:
            raise ScenarioError(flag, f"cannot write {path}: {err.strerror}") from None
        if not stat.S_ISREG(mode):
            raise ScenarioError(flag, f"{path} exists and is not a regular file (a device, pipe or socket)")
    if suffixes is not None and path.suffix.lower() not in suffixes:
        got = repr(path.suffix) if path.suffix else "none"
        raise ScenarioError(flag, f"unknown file extension {got} in {path.name!r}; use {', '.join(suffixes)}")
    _writable_folder(path.parent, flag, path)


def check_output_dir(path: str | Path | None, flag: str) -> None:
    """Before work starts: ``path`` can be created or replaced as a folder."""
    if path is None:
        return
    path = Path(path)
    _names_fit(path, flag)
    if str(path) in ("", ".", "..") or path.resolve().parent == path.resolve():
        raise ScenarioError(flag, f"give a folder to write in, got {str(path)!r}")
    if path.exists() and not path.is_dir():
        raise ScenarioError(flag, f"{path} is a file; give a folder")
    _writable_folder(path, flag)


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp_path)`` then move the temp file onto ``path`` (same folder, same suffix)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(path.parent, path.stem, path.suffix)
    tmp: Path | None = None
    try:
        with signals_held():
            fd, name = tempfile.mkstemp(prefix=_prefix(path.stem), suffix=path.suffix, dir=path.parent)
            os.close(fd)
            tmp = Path(name)
            os.chmod(tmp, _umask_mode(0o666))  # as a plain open() would create it
        with not_written(path):
            write(tmp)
        with signals_held():
            os.replace(tmp, path)
            tmp = None
    except BaseException:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        raise
    return path


@contextmanager
def not_written(path: Path, verb: str = "write", after: str = "nothing was replaced") -> Iterator[None]:
    """A write into ``path``'s temporary that fails (the disk full, a file-size or quota limit, an I/O
    error, also as pyarrow reports it) is one line naming ``path``: its temporary is removed, so
    nothing was replaced (``after`` says otherwise where something was: a marker after its commit)."""
    try:
        yield
    except OSError as err:
        detail = err.strerror or str(err) or type(err).__name__
        raise TwinError(f"{path}: could not {verb} it ({detail}); {after}") from None


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))


def write_parquet(frame: object, path: Path, metadata: dict[str, str]) -> None:
    """``frame`` (a pandas DataFrame) as Parquet at ``path`` with ``metadata`` in the file's key-value
    metadata (``twin_version``, the scenario: where a frame came from travels with it)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    extra = {k.encode(): v.encode() for k, v in metadata.items()}
    pq.write_table(table.replace_schema_metadata({**(table.schema.metadata or {}), **extra}), path)


# --------------------------------------------------------------------------- folders shared by commands
# ``twin run`` and ``twin report`` (and a co-design report) write into one folder ``DIR/<name>/``. Each
# command owns the files it writes there, listed in the folder's marker; a command replaces its own
# files and never touches another's, so a report never deletes what a run wrote (and the reverse).
MARKER = ".clustertwin.json"  # in every folder twin writes: who wrote which file
_LOCK = ".clustertwin.lock"  # held while a command puts its files in place: one result at a time
KEPT = ":kept"  # a command's marker entry ``owner:kept``: the files it keeps in place while it works


def _manifest(folder: Path) -> dict[str, list[str]]:
    """The files each command wrote in ``folder`` as its marker lists them; {} where it has none. Its
    names say what twin may replace and remove there, so a marker that is not one twin writes is
    refused, naming its key: not JSON, ``files`` no mapping of lists of names, or a name that is empty,
    absolute or climbs out (``.``, ``..``): a marker edited to list ``..`` made ``twin run -o`` remove
    the folder above, and one listing a string was read letter by letter."""
    import json

    marker = folder / MARKER
    try:
        text = marker.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as err:
        raise ScenarioError("", f"cannot read it ({_why(err)}): {NOT_A_MARKER}", str(marker)) from None
    try:
        data = json.loads(text)
    except ValueError:
        raise ScenarioError("", f"not JSON: {NOT_A_MARKER}", str(marker)) from None
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, dict):
        raise ScenarioError("files", f"not a mapping of each command's files: {NOT_A_MARKER}", str(marker))
    for who, names in files.items():
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ScenarioError(f"files.{who}", f"not a list of file names: {NOT_A_MARKER}", str(marker))
        for i, name in enumerate(names):
            if name.startswith("/") or any(part in ("", ".", "..") for part in name.split("/")):
                why = f"{shown(repr(name))} is no name of a file in the folder: {NOT_A_MARKER}"
                raise ScenarioError(f"files.{who}[{i}]", why, str(marker))
    return {str(k): list(v) for k, v in files.items()}


NOT_A_MARKER = (
    f"twin writes its marker {MARKER} as a JSON object listing the files each command wrote; "
    "remove the folder's files twin wrote and the marker, or give another folder"
)


def _why(err: BaseException) -> str:
    return getattr(err, "strerror", None) or type(err).__name__


def check_output_folder(
    path: str | Path, flag: str = "--output", owner: str | None = None, writes: tuple[str, ...] = ()
) -> Path:
    """Before work starts: ``path`` is a folder twin may write into: absent, empty, or one that twin
    wrote (it holds :data:`MARKER`). A folder of someone else's files is refused, never replaced; so is
    one where another twin command wrote a file of a name ``owner`` ``writes`` (the names it writes
    whatever happens, a folder's with a trailing ``/``: :func:`owned_outputs` checks every name again
    when the work is done), or where what no twin command wrote stands at one (:func:`_refuse_theirs`)."""
    path = Path(path)
    _names_fit(path, flag)
    if path.name in ("", ".", "..") or path.resolve().parent == path.resolve():
        raise ScenarioError(flag, f"give a folder to write in, got {str(path)!r}")
    if path.exists() or path.is_symlink():
        if not path.is_dir():
            raise ScenarioError(flag, f"{path} is a file; give a folder")
        if not (path / MARKER).exists() and any(not e.name.startswith(".") for e in os.scandir(path)):
            raise ScenarioError(
                flag, f"{path} holds files twin did not write (no {MARKER} in it); give another folder or empty it"
            )
        names = [w.rstrip("/") for w in writes]
        if owner is not None and writes:
            _refuse_taking(path, owner, _manifest(path), names, flag)
        if owner is not None:  # the names it writes, and those it wrote there before (figures/)
            ours = {n.split("/", 1)[0] for n in _manifest(path).get(owner, [])}
            _refuse_links(path, sorted(ours | set(names)), flag)
            files = [w for w in writes if not w.endswith("/")]
            _refuse_theirs(path, None, names, _manifest(path), flag, files)
    _writable_folder(path, flag)
    return path


def _refuse_links(path: Path, names: list[str], flag: str) -> None:
    """Refuse a link to a folder where twin puts ``path/name`` (a report's ``figures/`` made a link to
    another folder): twin never writes through a link, and renaming its folder onto the link failed
    after all the work, naming the temporary folder and no flag. A link to a file is replaced by the
    file, as everywhere (its target untouched), so it is not refused."""
    for name in names:
        link = path / name
        if link.is_symlink() and link.is_dir():
            try:
                to = f" (to {os.readlink(link)})"
            except OSError:
                to = ""
            raise ScenarioError(
                flag, f"{link} is a link{to}; twin does not write through links: remove it or give another folder"
            )


def claim_output_folder(
    path: str | Path,
    flag: str = "--output",
    owner: str | None = None,
    keeps: tuple[str, ...] = (),
    writes: tuple[str, ...] = (),
) -> Path:
    """:func:`check_output_folder`, then create the folder with its marker: for a command that keeps
    files there while it works (a co-design report its results, ``twin plan layouts`` its search).

    ``owner`` keeps the files named ``keeps`` (written in place as it works, resumed from the next
    time). Each must be absent or one ``owner`` kept there before; a file of that name that another
    command wrote, or that the marker does not list (the user's), is refused before any work, never
    overwritten or read as a cache. They are listed in the marker as ``owner:kept`` (:data:`KEPT`),
    apart from the results ``owner`` puts in place: a later result never removes them. ``writes``: the
    names of those results, checked before the work as :func:`check_output_folder` checks them."""
    path = check_output_folder(path, flag, owner, writes)  # (a link where its folders went: refused)
    path.mkdir(parents=True, exist_ok=True)
    if not (path / MARKER).exists():
        _write_manifest(path, {})
    if owner is None or not keeps:
        return path
    import fcntl

    def check(files: dict[str, list[str]]) -> None:
        mine = set(files.get(owner + KEPT, [])) | set(files.get(owner, []))  # (a result it also puts in place)
        for name in keeps:
            if name in mine or not ((path / name).exists() or (path / name).is_symlink()):
                continue
            who = next((w for w, names in sorted(files.items()) if name in names), None)
            whose = f"twin {_command(who)}'s {name}" if who else f"{name}, which twin did not write"
            raise ScenarioError(flag, f"{path} holds {whose}; give another folder, or move it away")

    check(_manifest(path))  # (a refusal leaves the folder as it was: not even the lock file)
    if set(keeps) <= set(_manifest(path).get(owner + KEPT, [])):
        return path
    with open(path / _LOCK, "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        files = _manifest(path)
        check(files)  # (again: another command may have written there meanwhile)
        files[owner + KEPT] = sorted(set(files.get(owner + KEPT, [])) | set(keeps))
        _write_manifest(path, files)
    return path


def _command(owner: str) -> str:
    """The command a marker entry names (``plan-layouts:kept``: ``plan layouts``)."""
    return owner.removesuffix(KEPT).replace("-", " ")


def _write_manifest(folder: Path, files: dict[str, list[str]], committed: bool = False) -> None:
    """The marker listing ``files``, replaced whole. Failing (the disk full), one line naming it: before a
    commit, "nothing was replaced"; after one (``committed``), that the results are in place, listed as
    twin's by the marker written before them (:func:`owned_outputs`)."""
    import json

    from sim import __version__

    text = json.dumps({"twin_version": __version__, "files": files}, indent=1, sort_keys=True) + "\n"
    tmp = folder / f"{MARKER}.{os.getpid()}.tmp"
    after = "the results are in place, and the marker written before them lists them as twin's"
    failed = not_written(folder / MARKER, "update", after) if committed else not_written(folder / MARKER)
    try:
        with failed:
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, folder / MARKER)
    finally:
        tmp.unlink(missing_ok=True)  # (gone once renamed; else the half-written one)


@contextmanager
def written_beside(task: Callable[[], object]) -> Iterator[None]:
    """Run ``task`` (it writes files) in a forked child while the ``with`` block runs here, and wait
    for it when the block ends: on two cores a run's Gantt chart renders while its trace is written
    (:class:`sim.forked.Forked`: where the child fails, ``task`` runs again here and its error
    is raised here; where there is no child, it runs here after the block). If the block raises, the
    child is killed and reaped before the error goes on (the caller's temporary folder is then
    removed with nothing still writing into it)."""
    from sim.forked import Forked

    job = Forked(task)
    try:
        yield
    except BaseException:
        job.cancel()
        raise
    job.result()


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


@contextmanager
def owned_outputs(path: str | Path, owner: str, flag: str = "--output") -> Iterator[Path]:
    """Fill a temporary folder with ``owner``'s files for ``path``; on success they replace the files
    ``owner`` wrote there before (files it no longer writes are removed), and every other file stays,
    inside the folders it writes too (a figure of the user's in ``figures/``: the marker lists every file
    twin wrote, folders' files as ``folder/name``); on failure nothing in ``path`` changes. Two commands
    finishing at once put their files in place one after the other (a lock), so the folder never holds
    a mix of two results of one command."""
    import fcntl

    path = check_output_folder(path, flag)
    # the folders this result makes (the commit makes ``path``), removed again if it fails and they are empty
    made = ([] if path.exists() or path.is_symlink() else [path]) + _missing_parents(path)
    stem = f"{path.name}.{owner}"
    # the temporary on the file system the files go to: beside the folder, or inside it where the folder
    # is a link (to another file system, a rename from beside the link failed: "Invalid cross-device link")
    beside = path if path.is_symlink() and path.is_dir() else path.parent
    tmp: Path | None = None
    committed = False
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        clean_stale(beside, stem)
        with signals_held():
            for attempt in range(3):
                try:
                    tmp = Path(tempfile.mkdtemp(prefix=_prefix(stem), dir=beside))
                    break
                except FileNotFoundError:  # another run into the same new folder failed and removed it
                    if attempt == 2:
                        raise
                    path.parent.mkdir(parents=True, exist_ok=True)
            assert tmp is not None
            os.chmod(tmp, _umask_mode(0o777))
        with not_written(path):
            yield tmp
        claim_output_folder(path, flag)  # checked again: another process may have written there meanwhile
        with open(path / _LOCK, "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            with signals_held():
                files = _manifest(path)
                wrote = {n for names in files.values() for n in names}  # by twin, inside folders too
                _recover_interrupted(path, wrote)
                # a folder an older marker lists without its files: all of it is twin's (as it was then)
                whole = {n for n in wrote if "/" not in n and not any(m.startswith(n + "/") for m in wrote)}
                new = sorted(e.name for e in os.scandir(tmp))
                _refuse_taking(path, owner, files, new, flag)
                _refuse_theirs(path, tmp, new, files, flag)
                _refuse_links(path, new, flag)  # (made since the check before the work: nothing replaced)
                inside = sorted(f"{name}/{rel}" for name in new if (tmp / name).is_dir() for rel in _tree(tmp / name))

                # the marker first lists what is about to land as the owner's too: a commit cut short (the disk
                # full at the final marker, a kill) leaves files the next run may replace, not "not twin's"
                def claiming(names: list[str]) -> dict[str, list[str]]:  # the marker with ``names`` the owner's too
                    mine = [n for n in inside if n.split("/", 1)[0] in names]
                    return {**files, owner: sorted({*files.get(owner, []), *names, *mine})}

                _write_manifest(path, claiming(new))
                landed: list[str] = []
                try:
                    for name in new:
                        dst = path / name
                        if (dst.exists() or dst.is_symlink()) and (tmp / name).is_dir() != dst.is_dir():
                            _remove(dst)  # a file where a folder goes, or the reverse
                        if dst.is_dir() and not dst.is_symlink():
                            old = path / f".{name}.{os.getpid()}.old"
                            os.replace(dst, old)
                            os.replace(tmp / name, dst)
                            landed.append(name)
                            if name not in whole:
                                _keep_theirs(old, dst, name, wrote)
                            shutil.rmtree(old, ignore_errors=True)
                        else:
                            os.replace(tmp / name, dst)
                            landed.append(name)
                except Exception:  # (an error, not a kill: the marker claims only what landed, best effort)
                    with contextlib.suppress(TwinError):
                        _write_manifest(path, claiming(landed))
                    raise
                others = {n for who, names in files.items() if who != owner for n in names if "/" not in n}
                for name in files.get(owner, []):
                    if "/" not in name and name not in new and name not in others:
                        if name in whole:
                            _remove(path / name)
                        else:
                            _remove_ours(path, name, wrote)
                files = {  # (its own kept files stay listed as kept: a later result never removes them)
                    who: names if who == owner + KEPT else [n for n in names if n.split("/", 1)[0] not in new]
                    for who, names in files.items()
                    if who != owner
                }
                files[owner] = new + inside
                _write_manifest(path, {k: v for k, v in files.items() if v}, committed=True)
                tmp.rmdir()
                tmp = None
                committed = True
    except BaseException:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        for folder in made:  # the folders made for this result, if nothing else landed in them (innermost first)
            with contextlib.suppress(OSError):
                folder.rmdir()
        if committed:  # a signal held back through the commit, delivered as it ended: the results are whole
            _LANDED.append(path)
        raise


def _missing_parents(path: Path) -> list[Path]:
    """The folders above ``path`` that do not exist yet, innermost first: made for its result, and removed
    again (when empty) if the result fails (a failed first run into a new ``-o DIR`` left ``DIR`` empty)."""
    missing = []
    folder = path.parent
    while not (folder.exists() or folder.is_symlink()) and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing


_LANDED: list[Path] = []  # folders whose commit was whole when an interruption held back through it came


def landed_before_interruption() -> str:
    """What the error line of an interruption adds where it came as a commit ended (held back through it,
    :func:`signals_held`): ``after the results were put in place in DIR`` ('' otherwise). The results
    are whole there; "interrupted" alone made a user take the run for lost."""
    return f"after the results were put in place in {_LANDED[-1]}" if _LANDED else ""


def forget_landed() -> None:
    """A new command starts (one process may run several: tests, an embedding program)."""
    _LANDED.clear()


def _refuse_taking(path: Path, owner: str, files: dict[str, list[str]], new: list[str], flag: str) -> None:
    """Refuse to replace a file another command wrote in ``path`` (a serve's ``summary.json`` by a run's,
    a report's ``report.md`` by a run plan's): two results would be mixed in one folder, the other's
    partly lost. Nothing is replaced then."""
    for who, names in sorted(files.items()):  # (a name it lists that is gone takes nothing)
        if who in (owner, owner + KEPT):
            continue
        taken = [n for n in new if n in names and ((path / n).exists() or (path / n).is_symlink())]
        if taken:
            listed = ", ".join(taken[:4]) + (", ..." if len(taken) > 4 else "")
            raise ScenarioError(flag, f"{path} holds twin {_command(who)}'s {listed}; give another folder")


def _refuse_theirs(
    path: Path,
    tmp: Path | None,
    new: list[str],
    files: dict[str, list[str]],
    flag: str,
    plain: list[str] | None = None,
) -> None:
    """Refuse to replace what no twin command wrote where a command puts its files ``new`` (``tmp``, the
    temporary holding them; None before the work, when the names are checked, ``plain`` those of them
    that are files rather than folders): a file or folder of
    such a name that the marker does not list (the user's ``summary.md`` beside twin's was overwritten);
    a folder where it now puts a file, holding files the marker does not list (the user's folder
    ``trace-1f1b.json`` was removed with their notes); a file the marker does not list inside a folder
    it writes, at a name it writes there. Nothing is replaced then. (A user's other files inside a
    folder twin writes stay, listed or not: :func:`_keep_theirs`.)"""
    wrote = {n for names in files.values() for n in names}
    whole = {n for n in wrote if "/" not in n and not any(m.startswith(n + "/") for m in wrote)}
    for name in new:
        dst = path / name
        if not (dst.exists() or dst.is_symlink()):
            continue
        if not dst.is_dir() or dst.is_symlink():  # a file (or a link): replaced only if twin wrote it
            if name not in wrote:
                raise ScenarioError(flag, f"{dst} is not a file twin wrote; give another folder, or move it away")
            continue
        if tmp is None and name not in (plain or ()):
            continue
        theirs = [rel for rel in _tree(dst) if f"{name}/{rel}" not in wrote]
        if tmp is None or not (tmp / name).is_dir():  # a file where a folder is: it goes, unless it holds theirs
            clash = theirs  # (even one an older marker lists whole: a name listed alone may be a file of
            # twin's that the user made a folder of, which is no longer twin's to remove)
        elif name in whole:  # a folder an older marker lists without its files: all twin's
            clash = []
        else:
            clash = [rel for rel in theirs if (tmp / name / rel).exists() or (tmp / name / rel).is_symlink()]
        if clash:
            raise ScenarioError(
                flag, f"{dst / clash[0]} is not a file twin wrote; give another folder, or move it away"
            )


def _tree(folder: Path) -> list[str]:
    """The files under ``folder`` (links and other non-folders included), as paths relative to it."""
    out = []
    for root, dirs, names in os.walk(folder):
        rel = Path(root).relative_to(folder)
        out += [(rel / n).as_posix() for n in names]
        out += [(rel / d).as_posix() for d in dirs if (Path(root) / d).is_symlink()]  # (not walked)
    return out


def _remove_ours(path: Path, name: str, wrote: set[str]) -> None:
    """Remove ``path/name``, which twin wrote and writes no more; of a folder only the files twin wrote
    (``name/...`` in ``wrote``), and the folders they leave empty: a user's file there stays."""
    target = path / name
    if not target.is_dir() or target.is_symlink():
        _remove(target)
        return
    for rel in _tree(target):
        if f"{name}/{rel}" in wrote:
            _remove(target / rel)
    for root, _, _ in sorted(os.walk(target), key=lambda w: -len(Path(w[0]).parts)):  # deepest first
        with contextlib.suppress(OSError):  # (not empty: a user's file is in it)
            os.rmdir(root)


_OLD = re.compile(r"^\.(.+)\.(\d+)\.old$")  # a folder being replaced, moved aside by the commit of process PID


def _recover_interrupted(path: Path, wrote: set[str]) -> None:
    """A commit killed between moving a folder ``NAME`` aside (``.NAME.PID.old``) and removing it (a SIGKILL,
    a power cut) left it there, never removed, the user's files in it. Put it back where nothing took its
    place; else carry the user's files into ``NAME`` as that commit would have, then remove it. Only for a
    ``NAME`` the marker lists (twin's folder)."""
    for entry in list(os.scandir(path)):
        m = _OLD.match(entry.name)
        if m is None or _alive(int(m.group(2))) or not entry.is_dir(follow_symlinks=False):
            continue
        name, old, dst = m.group(1), Path(entry.path), path / m.group(1)
        if name not in wrote and not any(n.startswith(name + "/") for n in wrote):
            continue  # (not a folder twin wrote: a dotfile of the user's so named stays as it is)
        try:
            if not (dst.exists() or dst.is_symlink()):
                os.replace(old, dst)
            elif dst.is_dir() and not dst.is_symlink():
                _keep_theirs(old, dst, name, wrote)
                shutil.rmtree(old, ignore_errors=True)
        except OSError:
            continue


def _keep_theirs(old: Path, new: Path, name: str, wrote: set[str]) -> None:
    """Move the files in ``old`` (the folder ``name`` being replaced by ``new``) that twin did not write
    (not ``name/...`` in ``wrote``) into ``new``, where ``new`` has no file of that name: a user's file
    in a folder twin writes stays, as it would beside it."""
    for rel in _tree(old):
        if f"{name}/{rel}" in wrote:
            continue  # twin's, from the result being replaced
        target = new / rel
        if target.exists() or target.is_symlink():
            continue  # twin writes that name now
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(old / rel, target)
        except OSError:  # (twin writes a file where its folder was: it goes with the old folder)
            continue


def trace_when(start: float, end: float, scale: float) -> dict[str, float]:
    """A trace slice's ``ts`` and ``dur`` in microseconds (3 decimals: nanoseconds) from times ``* scale``:
    its end rounded like the next slice's start, so slices that touch never overlap by a rounding step
    (Perfetto reads that as bad nesting). The step's and the chunk's traces write their slices so."""
    ts = round(start * scale, 3)
    return {"ts": ts, "dur": round(round(end * scale, 3) - ts, 3)}


JSON_COMPACT = (",", ":")  # json.dumps separators of the traces written as text


class QuotedStrings:
    """``json.dumps`` of strings, each distinct one encoded once: the traces format their slices as
    text directly and repeat a few names tens of thousands of times."""

    def __init__(self) -> None:
        self._text: dict[str, str] = {}

    def __call__(self, value: str) -> str:
        hit = self._text.get(value)
        if hit is None:
            import json

            hit = self._text[value] = json.dumps(value)
        return hit
