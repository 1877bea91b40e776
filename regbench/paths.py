"""Checks of the paths regbench reads and writes, made before any work starts.

A results store, a study file and a report folder must be what they claim: a regular file
(or a folder) on a disk's file system, at a path the OS accepts. A FIFO blocks its reader
forever, /dev/zero never ends, /dev/null swallows rows and files under /proc or /sys are no
storage; each is refused with one line naming the path.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat
from pathlib import Path

from regbench.errors import RegbenchError

MAX_STUDY_BYTES = 1 << 20  # a study file is a few kB of TOML

KINDS = {stat.S_IFDIR: "a folder", stat.S_IFCHR: "a character device",
         stat.S_IFBLK: "a block device", stat.S_IFIFO: "a FIFO (named pipe)",
         stat.S_IFSOCK: "a socket"}
# statfs(2) f_type of file systems whose files are views of the kernel, not storage
PSEUDO = {0x9FA0: "procfs", 0x62656572: "sysfs", 0x64626720: "debugfs", 0x74726163: "tracefs",
          0x73636673: "securityfs", 0x27E0EB: "cgroupfs", 0x63677270: "cgroup2fs",
          0x62656570: "configfs", 0xCAFE4A11: "bpffs", 0x6165676C: "pstore",
          0xDE5E81E4: "efivarfs", 0x1CD1: "devpts", 0x65735543: "fusectl",
          0xF97CFF8C: "selinuxfs", 0x42494E4D: "binfmt_misc", 0x19800202: "mqueue"}


def _say(what: str, text: str) -> str:
    return f"{what}: {text}" if what else text


def kind(mode: int) -> str:
    """What a file that is not a regular file is, in words."""
    return KINDS.get(stat.S_IFMT(mode), "not a regular file")


def pseudo_fs(path: str | Path) -> str | None:
    """The name of the kernel file system `path` is on (procfs, sysfs, ...), else None."""
    buffer = ctypes.create_string_buffer(512)  # struct statfs; f_type is its first field
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.statfs(os.fsencode(path), buffer) != 0:
            return None
    except (OSError, AttributeError, ValueError):
        return None
    return PSEUDO.get(ctypes.c_long.from_buffer(buffer).value & 0xFFFFFFFF)


def existing_file(path: Path, what: str, noun: str) -> os.stat_result | None:
    """The stat of `path` if it is a regular file on a disk, None if nothing is there;
    anything else is a RegbenchError. `noun` says what the file should be."""
    try:
        info = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as error:
        raise RegbenchError(_say(what, f"cannot use {path} ({error.strerror}); "
                                       "choose another path")) from None
    if not stat.S_ISREG(info.st_mode):
        raise RegbenchError(_say(what, f"{path} is {kind(info.st_mode)}, not {noun}"))
    fs = pseudo_fs(path)
    if fs:
        raise RegbenchError(_say(what, f"{path} is a file of {fs}, not {noun}; choose a "
                                       "file on a disk"))
    return info


def file_to_write(path: Path, what: str, noun: str) -> os.stat_result | None:
    """Check that `path` is a regular file on a disk, or can be created there: its stat, or
    None if it is new."""
    try:
        os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        _creatable(Path(os.path.realpath(path)) if os.path.islink(path) else path, what)
        return None
    except OSError:
        pass  # existing_file names the reason
    return existing_file(path, what, noun)


def folder_to_write(path: Path, what: str) -> None:
    """Check that `path` is a folder on a disk files can be written in, or can be created."""
    try:
        info = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        _creatable(path, what)
        return
    except OSError as error:
        raise RegbenchError(_say(what, f"cannot use {path} ({error.strerror}); "
                                       "choose another folder")) from None
    if not stat.S_ISDIR(info.st_mode):
        is_a = "a file" if stat.S_ISREG(info.st_mode) else kind(info.st_mode)
        raise RegbenchError(_say(what, f"{path} is {is_a}; expected a folder"))
    _writable(path, path, what)


def _creatable(path: Path, what: str) -> None:
    """`path` does not exist: check that it can be made, with the folders it needs."""
    for name in Path(path).parts:
        if len(os.fsencode(name)) > 255:  # NAME_MAX of every common file system
            raise RegbenchError(_say(what, f"cannot create {path} (a name in it has "
                                           f"{len(os.fsencode(name))} bytes, at most 255); "
                                           "choose a shorter name"))
    parent = Path(path).parent
    while True:
        try:
            info = os.stat(parent)
            break
        except (FileNotFoundError, NotADirectoryError):
            if parent == parent.parent:
                raise RegbenchError(_say(what, f"cannot create {path}: no folder on its "
                                               "way exists")) from None
            parent = parent.parent
        except OSError as error:
            raise RegbenchError(_say(what, f"cannot create {path} ({error.strerror}); "
                                           "choose another path")) from None
    if not stat.S_ISDIR(info.st_mode):
        raise RegbenchError(_say(what, f"cannot create {path}: {parent} is a file, not a "
                                       "folder; choose another path"))
    if ".." in Path(path).relative_to(parent).parts:  # `new/../x`: once `new` is made, the
        # path names another file, perhaps one that exists (the study file itself)
        raise RegbenchError(_say(what, f"cannot create {path}: '..' after a folder that does "
                                       "not exist yet; give the path without '..'"))
    _writable(parent, path, what)


def _writable(folder: Path, path: Path, what: str) -> None:
    fs = pseudo_fs(folder)
    if fs:
        raise RegbenchError(_say(what, f"cannot write {path}: {folder} is on {fs}, not a "
                                       "disk; choose a folder on a disk"))
    if not os.access(folder, os.W_OK | os.X_OK):
        reason = os.strerror(errno.EROFS) if _read_only(folder) else "permission denied"
        raise RegbenchError(_say(what, f"cannot write {path}: folder {folder} is not "
                                       f"writable ({reason}); choose another folder"))


def _read_only(folder: Path) -> bool:
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def check_study_file(path: Path) -> None:
    """Refuse a study file that is not a regular file (a FIFO would block, a device never
    ends) or is too large to be one. A missing file is left to the reader to report."""
    try:
        info = os.stat(path)
    except OSError:
        return
    if stat.S_ISDIR(info.st_mode):
        return  # the reader says "Is a directory"
    if not stat.S_ISREG(info.st_mode):
        raise RegbenchError(f"{path}: {kind(info.st_mode)}, not a study file (TOML)")
    fs = pseudo_fs(path)
    if fs:
        raise RegbenchError(f"{path}: a file of {fs}, not a study file (TOML)")
    if info.st_size > MAX_STUDY_BYTES:
        raise RegbenchError(f"{path}: {info.st_size} bytes; a study file is at most "
                            f"{MAX_STUDY_BYTES} bytes (1 MiB) of TOML")
