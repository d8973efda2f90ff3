"""Run untrusted, model-written programs in a throwaway, resource-limited, network-less sandbox.

Untrusted code only ever runs here: never in the emlab process, never with the parent's environment variables.

Why our own and not a library: the usual Python "sandboxes" (RestrictedPython, exec with trimmed builtins) run
the code in-process, which is exactly what a reward-hacking model attacks (patched `__eq__`, `sys.exit`, pytest
internals); container tools (docker, bubblewrap, nsjail, firejail) are not installed on our CI machines and
cannot be pip-installed. The kernel features we need (namespaces, rlimits, setuid) are reachable from the
standard library plus `ctypes`, so the whole sandbox is this file.

How one run works. The caller's thread starts a small launcher (`python -I -S -c LAUNCHER`, never `preexec_fn`,
so it is safe from many threads) in a new session with a scrubbed environment. The launcher:

- as root: unshares network, mount, PID, IPC and UTS namespaces, forks an init process (PID 1 of the new PID
  namespace) and from it the target, which drops to a dedicated uid/gid (one per concurrent run, from
  61000-61999, claimed with a lock file so two emlab processes never share one), sets `no_new_privs`, the
  rlimits (CPU, address space, processes, file size, open files, no core files) and execs `argv`;
- not root: tries a user namespace (mapping only our own uid) with the same network/mount/PID namespaces,
  else runs with rlimits and a process group only.

What the program sees (mount namespace, `pivot_root`): a fresh, read-only root holding only
- the system dirs /usr, /bin, /sbin, /lib* (shared libraries, /bin/sh, coreutils) and a few files of /etc (the
  loader cache, passwd, group, localtime, hosts, mime.types...; not pip.conf, environment and the like);
- the interpreter: `PYTHON`, the real executable behind this process's python (never a venv's), and the
  directory holding its stdlib, lib-dynload and libpython, each at its own path. An `argv[0]` that is this
  process's interpreter is run as `PYTHON`;
- the packages the caller declares (`packages=`: distributions, with their dependencies), each mounted
  into the base interpreter's own site-packages, so `python -I` imports them like installed ones;
- a private /proc (PID namespace), /dev with null, zero, full, random and urandom, size-limited tmpfs on /tmp
  and /dev/shm, and the working directory: its own size-limited tmpfs at the run's temp path, filled with
  `files` (root-owned and read-only when `writable=False`).
Nothing else: no checkout, no emlab source, no venv, no home directory, no /work, /opt, /var, /run. Every
site-packages / dist-packages dir, the venv, emlab's package, its repo and this process's sys.path entries are
in addition covered by empty mounts wherever they would show through a bound dir (a repo under /usr/src, a
Debian dist-packages). Why: model-written code must not be able to import or read emlab's task bank (and run
its reference solutions), the expected values, or anything else of the host; it gets the stdlib and what the
task declares. When the target exits, init sends back the files named in `collect` and exits, and the kernel
kills everything left in the PID namespace. The parent then kills the process group and every process still
owned by the sandbox uid (scanning /proc), and removes its temp dir.

The environment is `_minimal_env`: PATH, HOME (the working dir), TMPDIR, C.UTF-8 locale, three PYTHON*
settings and MALLOC_ARENA_MAX=2. The last keeps threaded code inside RLIMIT_AS: glibc gives every thread that
allocates its own arena and reserves 64 MiB of address space for each, so under the default 1 GiB a pool of
~14 threads could not start another (measured: 14 threads peaked at 1.0 GB of address space; with 2 arenas,
32 threads peak at 0.34 GB and 48 at 0.48 GB).

What is contained as root ("uid+netns+mntns+pidns+ipcns+utsns"): network (only a down loopback: no
connection, even to 127.0.0.1 of the host; abstract unix sockets are per namespace), reading or writing
anything of the host beyond the read-only view above, signals to the parent or any other process (other
uid, other PID namespace), background and double-forked processes (killed at the end), fork bombs
(RLIMIT_NPROC counts only this sandbox's uid), memory (RLIMIT_AS), CPU, output size, file size, the parent's
environment variables and process list. What is NOT contained: what the visible system dirs reveal (installed
software, /etc/passwd), kernel exploits (no seccomp filter: the program may, e.g., create nested user
namespaces, which cannot undo the read-only mounts), CPU and disk bandwidth, the page cache used by its tmpfs
mounts (at most `tmpfs_bytes` each).

Without root the level degrades and `SandboxResult.isolation` says which one was reached:
"userns+netns+mntns+pidns+ipcns" (the same network, file-system view and process containment, but as the
caller's own uid, and RLIMIT_NPROC is shared with the caller's processes; where the kernel refuses a private
/proc, as in some containers, the sandbox has none and says so in `warnings`), or
"rlimits-only" (no user namespaces: no network, filesystem or leftover-process containment at all; do not
run untrusted code there). Tests assert the strong level as root and skip with the reason otherwise.
"""

from __future__ import annotations

import base64
import fcntl
import functools
import glob
import importlib
import json
import os
import re
import selectors
import shutil
import signal
import site
import stat
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from emlab.errors import EmlabError

__all__ = ["SandboxError", "SandboxLimits", "SandboxResult", "run_sandboxed", "run_many", "UID_RANGE", "PYTHON"]

UID_RANGE = range(61000, 62000)
CHANNEL_FD = 3  # the side channel's write end in the target, when `channel=True`
_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
_ETC = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "alternatives", "localtime", "timezone", "passwd", "group",
        "nsswitch.conf", "hosts", "host.conf", "mime.types", "os-release", "locale.alias")  # not pip.conf & co
_DEVICES = ("null", "zero", "full", "random", "urandom")


class SandboxError(EmlabError):
    """The sandbox could not be set up (not a failure of the sandboxed program)."""


@dataclass(frozen=True)
class SandboxLimits:
    """Resource limits for one run; sizes in bytes, times in seconds."""

    wall_s: float = 10.0
    cpu_s: int = 10
    memory_bytes: int = 1 << 30  # RLIMIT_AS
    nproc: int = 64  # processes + threads of the sandbox uid (root mode); on top of the user's own otherwise
    fsize_bytes: int = 16 << 20  # largest file the program may write
    nofile: int = 256
    output_bytes: int = 1 << 20  # cap for stdout, stderr and the channel, each; exceeding kills the run
    tmpfs_bytes: int = 64 << 20  # size of the working dir, /tmp and /dev/shm tmpfs, each
    collect_bytes: int = 1 << 20  # cap per collected file


@dataclass(frozen=True)
class SandboxResult:
    """What happened. stdout/stderr/channel are raw bytes (use `.stdout_text` etc. for str).

    returncode follows subprocess: >= 0 the exit code, < 0 minus the signal that killed the program, None if
    unknown. killed_reason: None, "timeout", "output_limit", "memory", "cpu", "file_size", "signal:<NAME>",
    or "setup" when the sandbox itself could not start the program (see stderr).
    """

    returncode: int | None
    stdout: bytes
    stderr: bytes
    timed_out: bool
    killed_reason: str | None
    truncated: bool
    wall_s: float
    isolation: str
    collected: dict[str, bytes] = field(default_factory=dict)
    channel: bytes = b""
    warnings: tuple[str, ...] = ()
    sandbox_uid: int | None = None  # the dedicated uid (root mode), None when the program ran as the caller's uid

    @property
    def stdout_text(self) -> str:
        """stdout decoded as UTF-8 (bad bytes replaced)."""
        return self.stdout.decode("utf-8", "replace")

    @property
    def stderr_text(self) -> str:
        """stderr decoded as UTF-8 (bad bytes replaced)."""
        return self.stderr.decode("utf-8", "replace")

    @property
    def ok(self) -> bool:
        """Exited by itself with code 0."""
        return self.returncode == 0 and self.killed_reason is None


# --------------------------------------------------------------------------------------------------------------
# The launcher: runs as its own process (python -I -S -c), so nothing below needs to be fork-safe in the parent.
# argv: <config fd> <status fd>. Config (JSON) arrives on the config fd; messages go out on the status fd as
# lines "<kind> <payload>": iso <feature>, warn <text>, error <text>, status <raw wait status>,
# collect <json>.
# --------------------------------------------------------------------------------------------------------------
_LAUNCHER = r'''
import base64, ctypes, json, os, resource, signal, sys
CFG_FD, ST = int(sys.argv[1]), int(sys.argv[2])
def say(kind, text=""):
    data = (kind + " " + text.replace("\n", " ") + "\n").encode()
    try:
        while data:
            data = data[os.write(ST, data):]
    except OSError:
        pass
libc = ctypes.CDLL(None, use_errno=True)
libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
def _b(s):
    return None if s is None else s.encode()
def mount(src, target, fstype, flags, data=None):
    if libc.mount(_b(src), _b(target), _b(fstype), flags, _b(data)) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), target)
def prctl(option, arg):
    libc.prctl(option, ctypes.c_ulong(arg), ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0))
def unshare(flags):
    return libc.unshare(flags) == 0
NEWNS, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET = 0x20000, 0x4000000, 0x8000000, 0x10000000, 0x20000000, 0x40000000
RDONLY, NOSUID, NODEV, NOEXEC, REMOUNT, BIND, REC, PRIVATE = 1, 2, 4, 8, 32, 4096, 16384, 1 << 18
prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: die with the thread that started us
data = b""
while True:
    chunk = os.read(CFG_FD, 1 << 16)
    if not chunk:
        break
    data += chunk
os.close(CFG_FD)
cfg = json.loads(data)
del data
if os.getppid() != cfg["parent_pid"]:
    os._exit(111)
devnull = os.open("/dev/null", os.O_RDWR)
os.umask(0o022)
root = os.geteuid() == 0
uid, gid = cfg["uid"], cfg["gid"]
feats = []

def quiet():
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    if cfg["channel_fd"] >= 0:
        os.close(cfg["channel_fd"])

if root:
    for name, flag in (("netns", NEWNET), ("mntns", NEWNS), ("pidns", NEWPID), ("ipcns", NEWIPC), ("utsns", NEWUTS)):
        if unshare(flag):
            feats.append(name)
        else:
            say("warn", "unshare(%s) failed: %s" % (name, os.strerror(ctypes.get_errno())))
else:
    ruid, rgid = os.getuid(), os.getgid()
    if unshare(NEWUSER):
        try:
            for path, text in (("/proc/self/setgroups", "deny"), ("/proc/self/uid_map", "%d %d 1" % (ruid, ruid)),
                               ("/proc/self/gid_map", "%d %d 1" % (rgid, rgid))):
                with open(path, "w") as fh:
                    fh.write(text)
            feats.append("userns")
        except OSError as e:
            say("warn", "user namespace maps: %s" % e)
        if "userns" in feats:
            for name, flag in (("netns", NEWNET), ("mntns", NEWNS), ("pidns", NEWPID), ("ipcns", NEWIPC)):
                if unshare(flag):
                    feats.append(name)
    else:
        say("warn", "user namespaces unavailable: %s" % os.strerror(ctypes.get_errno()))
if root:
    feats.insert(0, "uid")
for f in feats:
    say("iso", f)

if "pidns" in feats:
    init = os.fork()
    if init:
        quiet()
        _, st = os.waitpid(init, 0)
        os._exit(os.waitstatus_to_exitcode(st) & 0xFF if os.WIFEXITED(st) else 128 + os.WTERMSIG(st))
    prctl(1, signal.SIGKILL)
    prctl(4, 0)  # PR_SET_DUMPABLE off: a target of our own uid cannot open init's fds (the status pipe)

WORK = cfg["workdir"]

def decode(entry):
    return base64.b64decode(entry) if isinstance(entry, str) else b""

def write_files(base, owner):
    for rel, b64 in cfg["files"].items():
        path = os.path.join(base, rel)
        parent = os.path.dirname(path)
        if parent != base:
            os.makedirs(parent, exist_ok=True)
            if owner is not None:
                d = parent
                while d != base:
                    os.chown(d, *owner)
                    d = os.path.dirname(d)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "wb") as fh:
            fh.write(decode(b64))
        if owner is not None:
            os.chown(path, *owner)

ST_TO_MS = ((1, RDONLY), (2, NOSUID), (4, NODEV), (8, NOEXEC), (1024, 1024), (2048, 2048), (4096, 1 << 21))

def mkdirs(path):
    cur = ""
    for comp in [c for c in path.split("/") if c]:
        cur += "/" + comp
        if not os.path.lexists(cur):
            os.mkdir(cur, 0o755)

def bind_ro(source, target):
    """Bind `source` (a directory or a file) at `target`, read-only, keeping the source mount's flags."""
    if os.path.isdir(source):
        mkdirs(target)
    else:
        mkdirs(os.path.dirname(target))
        if not os.path.lexists(target):
            os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o644))
    mount(source, target, None, BIND)
    flags, have = REMOUNT | BIND | RDONLY | NOSUID, os.statvfs(source).f_flag
    for st, ms in ST_TO_MS:  # flags a user namespace may not drop (atime, nodev, ...) are kept as they are
        if have & st:
            flags |= ms
    mount(None, target, None, flags)

def tmpfs(target, opts, flags=NOSUID | NODEV):
    mkdirs(target)
    mount("tmpfs", target, "tmpfs", flags, opts)

def pivot(root):
    """Make `root` the root of this mount namespace and detach the old one entirely."""
    os.mkdir(root + "/.oldroot", 0o700)
    os.chdir(root)
    try:
        fn = libc.pivot_root
        ok = fn(b".", b".oldroot") == 0
    except AttributeError:
        nr = {"x86_64": 155, "aarch64": 41, "riscv64": 41, "loongarch64": 41, "ppc64le": 203, "ppc64": 203,
              "s390x": 217, "i686": 217, "i386": 217, "armv7l": 218}.get(os.uname().machine)
        ok = nr is not None and libc.syscall(nr, b".", b".oldroot") == 0
    if not ok:
        raise OSError(ctypes.get_errno(), "pivot_root: " + os.strerror(ctypes.get_errno()))
    os.chdir("/")
    if libc.umount2(b"/.oldroot", 2) != 0:  # MNT_DETACH
        raise OSError(ctypes.get_errno(), "umount old root: " + os.strerror(ctypes.get_errno()))
    os.rmdir("/.oldroot")
    mount(None, "/", None, REMOUNT | BIND | RDONLY | NOSUID | NODEV)

def setup_mounts():
    """A fresh root: system dirs, the interpreter and the declared packages read-only, private tmp/dev/proc."""
    mount(None, "/", None, REC | PRIVATE)
    R = cfg["newroot"]
    mount("tmpfs", R, "tmpfs", NOSUID | NODEV, "size=1m,mode=755")
    for d in cfg["system"]:
        if os.path.islink(d):
            os.symlink(os.readlink(d), R + d)
        elif os.path.isdir(d):
            bind_ro(d, R + d)
    mkdirs(R + "/etc")
    for name in cfg["etc"]:
        if os.path.islink("/etc/" + name):
            os.symlink(os.readlink("/etc/" + name), R + "/etc/" + name)
        elif os.path.exists("/etc/" + name):
            bind_ro("/etc/" + name, R + "/etc/" + name)
    for p in cfg["binds"]:
        bind_ro(p, R + p)
    sealed = []  # our own tmpfs mounts, made read-only once filled
    for p in cfg["masks"]:
        if os.path.isdir(R + p) and not os.path.islink(R + p):
            mount("tmpfs", R + p, "tmpfs", NOSUID | NODEV, "size=64k,mode=755")
            sealed.append(R + p)
        elif os.path.lexists(R + p) and not os.path.islink(R + p):
            bind_ro("/dev/null", R + p)
    for name, source in cfg["packages"].items():
        bind_ro(source, R + cfg["site_dir"] + "/" + name)
    tmpfs(R + "/dev", "size=64k,mode=755", NOSUID | NOEXEC)
    sealed.append(R + "/dev")
    for name in cfg["devices"]:
        if os.path.exists("/dev/" + name):
            bind_ro("/dev/" + name, R + "/dev/" + name)
    for name, dest in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
                       ("stderr", "/proc/self/fd/2")):
        os.symlink(dest, R + "/dev/" + name)
    size = cfg["limits"]["tmpfs_bytes"]
    for d in ("/tmp", "/dev/shm"):
        tmpfs(R + d, "size=%d,mode=1777" % size)
    if "pidns" in feats:
        try:
            mkdirs(R + "/proc")
            mount("proc", R + "/proc", "proc", NOSUID | NODEV | NOEXEC)
        except OSError as e:
            say("warn", "could not mount a private /proc: %s" % e)
    # the working dir: its own tmpfs, at the same path as the (empty) host dir
    opts = "size=%d,nr_inodes=4096,mode=%s" % (size, "700" if cfg["writable"] else "755")
    if cfg["writable"]:
        opts += ",uid=%d,gid=%d" % (uid, gid)
    tmpfs(R + WORK, opts)
    write_files(R + WORK, (uid, gid) if cfg["writable"] else None)
    if not cfg["writable"]:
        sealed.append(R + WORK)
    for p in sealed:
        mount(None, p, None, REMOUNT | BIND | RDONLY | NOSUID | NODEV | (NOEXEC if p == R + "/dev" else 0))
    pivot(R)

try:
    if "mntns" in feats:
        setup_mounts()
    else:
        owner = (uid, gid) if (root and cfg["writable"]) else None
        write_files(WORK, owner)
        if owner:
            os.chown(WORK, uid, gid)
        elif root:
            os.chmod(WORK, 0o755)
except Exception as e:
    say("error", "sandbox setup failed: %r" % (e,))
    os._exit(112)

def become_target():
    try:
        os.chdir(WORK)
        if root:
            os.setgroups([])
            os.setresgid(gid, gid, gid)
            os.setresuid(uid, uid, uid)
        prctl(38, 1)  # PR_SET_NO_NEW_PRIVS
        lim = cfg["limits"]
        for res, soft, hard in ((resource.RLIMIT_CPU, lim["cpu_s"], lim["cpu_s"] + 1),
                                (resource.RLIMIT_AS, lim["memory_bytes"], lim["memory_bytes"]),
                                (resource.RLIMIT_NPROC, lim["nproc"], lim["nproc"]),
                                (resource.RLIMIT_FSIZE, lim["fsize_bytes"], lim["fsize_bytes"]),
                                (resource.RLIMIT_NOFILE, lim["nofile"], lim["nofile"]),
                                (resource.RLIMIT_CORE, 0, 0)):
            resource.setrlimit(res, (soft, hard))
        keep = [0, 1, 2]
        if cfg["channel_fd"] >= 0:
            os.dup2(cfg["channel_fd"], 3)
            keep.append(3)
        os.set_inheritable(ST, False)
        open_fds = os.listdir("/proc/self/fd") if os.path.isdir("/proc/self/fd") else range(3, 1024)
        for fd in open_fds:
            fd = int(fd)
            if fd not in keep and fd != ST:
                try:
                    os.close(fd)
                except OSError:
                    pass
        for fd in keep:
            os.set_inheritable(fd, True)
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        os.execve(cfg["exec"], cfg["argv"], cfg["env"])
    except BaseException as e:
        say("error", "cannot start %r: %r" % (cfg["argv"][0], e))
        os._exit(127)

if "pidns" not in feats:
    become_target()
target = os.fork()
if target == 0:
    become_target()
quiet()
while True:
    try:
        pid, st = os.waitpid(-1, 0)
    except ChildProcessError:
        os._exit(113)
    if pid == target:
        break
for rel in cfg["collect"]:
    try:
        fd = os.open(WORK, os.O_RDONLY | os.O_DIRECTORY)
        comps = rel.split("/")
        for comp in comps[:-1]:
            nfd = os.open(comp, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = nfd
        ffd = os.open(comps[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=fd)
        os.close(fd)
        with os.fdopen(ffd, "rb") as fh:
            import stat as _stat
            if not _stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                continue
            blob = fh.read(cfg["limits"]["collect_bytes"] + 1)
        say("collect", json.dumps({"name": rel, "b64": base64.b64encode(blob).decode()}))
    except OSError:
        pass
say("status", str(st))
os._exit(0)
'''


# --------------------------------------------------------------------------------------------------------------
# uid pool: one uid per concurrent run, across threads and processes (flock'd lock files, released on exit).
# --------------------------------------------------------------------------------------------------------------
_pool_lock = threading.Lock()
_pool_next = [os.getpid() % len(UID_RANGE)]


def _lock_dir() -> str:
    for base in ("/run", tempfile.gettempdir()):
        path = os.path.join(base, "emlab-sandbox-uids")
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
        except OSError:
            continue
        st = os.lstat(path)
        if stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and not st.st_mode & 0o077:
            return path
    raise SandboxError("no safe directory for the sandbox uid locks (/run/emlab-sandbox-uids must be root-owned 0700)")


class _UidLease:
    """An exclusive claim on one sandbox uid (flock on a per-uid file)."""

    def __init__(self) -> None:
        directory = _lock_dir()
        for _ in range(len(UID_RANGE)):
            with _pool_lock:
                idx = _pool_next[0]
                _pool_next[0] = (idx + 1) % len(UID_RANGE)
            uid = UID_RANGE[idx]
            flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
            fd = os.open(os.path.join(directory, str(uid)), flags, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                continue
            self.uid, self._fd = uid, fd
            _kill_uid(uid)  # leftovers of a crashed earlier holder
            return
        raise SandboxError(f"all {len(UID_RANGE)} sandbox uids are in use")

    def release(self) -> None:
        """Give the uid back."""
        os.close(self._fd)


def _uid_pids(uid: int) -> list[int]:
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/status", "rb") as fh:
                for line in fh:
                    if line.startswith(b"Uid:"):
                        if str(uid).encode() in line.split()[1:]:
                            pids.append(int(name))
                        break
        except OSError:
            continue
    return pids


def _kill_uid(uid: int) -> None:
    """SIGKILL every process whose real, effective or saved uid is `uid` (repeated until none is left)."""
    for _ in range(50):
        pids = _uid_pids(uid)
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.005)


# --------------------------------------------------------------------------------------------------------------
# The parent side.
# --------------------------------------------------------------------------------------------------------------
def _under(path: str, top: str) -> bool:
    return path == top or path.startswith(top.rstrip("/") + "/")


def _base_python() -> str:
    """The interpreter sandboxed programs run on: the real file behind this process's python, never a venv's."""
    exe = os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)
    if sys.prefix != sys.base_prefix and _under(exe, os.path.realpath(sys.prefix)):  # a venv made with --copies
        major, minor = sys.version_info[:2]
        for name in (f"python{major}.{minor}", f"python{major}", "python"):
            candidate = os.path.join(sys.base_prefix, "bin", name)
            if os.path.isfile(candidate):
                return os.path.realpath(candidate)
    return exe


PYTHON = _base_python()


def _system_dir(path: str) -> bool:
    return any(_under(path, os.path.realpath(d)) or _under(path, d) for d in _SYSTEM_DIRS)


@functools.lru_cache(maxsize=1)
def _layout() -> tuple[tuple[str, ...], tuple[str, ...], str | None]:
    """(paths the interpreter needs outside the system dirs, paths to cover with an empty mount, site dir).

    Binds: the interpreter's executable, the directory holding its stdlib (and libpython), lib-dynload. Masks:
    every site-packages / dist-packages dir, the venv, emlab's source and repo, this process's sys.path beyond
    the stdlib: wherever one of them shows through a bound dir, it is covered. The site dir is the base
    interpreter's own site-packages, where the declared packages are mounted (so `python -I` finds them).
    """
    stdlib = os.path.dirname(os.path.realpath(os.__file__))
    binds = {PYTHON, os.path.dirname(stdlib)}
    stdlib_dirs = {stdlib}
    for name in ("_struct", "_json", "math", "select", "_socket"):
        try:
            origin = getattr(importlib.import_module(name), "__file__", None)
        except ImportError:
            continue
        if origin:
            stdlib_dirs.add(os.path.dirname(os.path.realpath(origin)))
    binds |= stdlib_dirs
    try:
        with open("/proc/self/maps") as fh:
            binds |= {os.path.dirname(line.split()[-1]) for line in fh if "/libpython" in line}
    except OSError:
        pass
    kept: list[str] = []
    for p in sorted((os.path.realpath(b) for b in binds), key=len):
        if not _system_dir(p) and not any(_under(p, k) for k in kept):
            kept.append(p)

    base = [sys.base_prefix, sys.base_exec_prefix]
    masks = set(site.getsitepackages()) | set(site.getsitepackages(base)) | {site.getusersitepackages()}
    for pattern in ("/usr/lib*/python*/*-packages", "/usr/local/lib*/python*/*-packages", "/usr/lib/python3"):
        masks |= set(glob.glob(pattern)) - stdlib_dirs
    for d in stdlib_dirs:
        masks |= {os.path.join(d, "site-packages"), os.path.join(d, "dist-packages")}
    if sys.prefix != sys.base_prefix:
        masks |= {sys.prefix, sys.exec_prefix}
    masks |= {p for p in sys.path if p and not p.endswith(".zip")}
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # src/emlab
    masks |= {package, os.path.dirname(package), os.getcwd()}
    repo = os.path.dirname(os.path.dirname(package))
    if os.path.exists(os.path.join(repo, "pyproject.toml")):
        masks.add(repo)
    needed = kept + sorted(stdlib_dirs) + [os.path.realpath(d) for d in _SYSTEM_DIRS]
    masks = {os.path.realpath(m) for m in masks if m and os.path.exists(m)}
    masks = {m for m in masks if m not in stdlib_dirs and not any(_under(n, m) for n in needed)}
    site_dir = next((os.path.realpath(d) for d in site.getsitepackages(base) if os.path.isdir(d)), None)
    if site_dir is not None:
        masks.add(site_dir)
    return tuple(kept), tuple(sorted(masks)), site_dir


def _requirement(spec: str) -> str | None:
    """The distribution a requirement names, None for an extra or a marker that does not hold here."""
    head, _, marker = spec.partition(";")
    if "extra" in marker:
        return None
    if marker.strip():
        try:
            from packaging.markers import Marker
        except ImportError:  # cannot tell: take it when installed
            pass
        else:
            if not Marker(marker.strip()).evaluate():
                return None
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", head)
    return match.group(1) if match else None


@functools.lru_cache(maxsize=None)
def _package_paths(packages: tuple[str, ...]) -> dict[str, str]:
    """Top-level import names (and .dist-info dirs) of the distributions and their dependencies -> host paths."""
    from importlib import metadata

    found: dict[str, str] = {}
    todo, seen = list(packages), set()
    while todo:
        name = todo.pop()
        key = re.sub(r"[-_.]+", "-", name).lower()
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            if name in packages:
                raise SandboxError(f"the sandbox cannot expose package {name!r}: it is not installed") from None
            continue
        for file in dist.files or ():
            top = file.parts[0]
            if top in ("..", "__pycache__") or top.startswith("__editable__") or top.endswith((".pth", ".egg-link")):
                continue
            if len(file.parts) == 1 and not top.endswith((".py", ".so")):
                continue
            found[top] = os.path.realpath(dist.locate_file(top))
        todo.extend(dep for dep in map(_requirement, dist.requires or ()) if dep)
    return found


def _minimal_env(workdir: str, extra: dict[str, str] | None) -> dict[str, str]:
    path_dirs = [os.path.dirname(PYTHON), "/usr/local/bin", "/usr/bin", "/bin"]
    env = {
        "PATH": ":".join(dict.fromkeys(path_dirs)),
        "HOME": workdir,
        "TMPDIR": "/tmp",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0",
        "PYTHONUNBUFFERED": "1",
        "MALLOC_ARENA_MAX": "2",  # glibc's per-thread arenas (64 MiB of address space each) would exhaust RLIMIT_AS
    }
    env.update(extra or {})
    return env


def _program(argv: list[str], path: str) -> tuple[str, list[str]]:
    """(file to execve, argv): this process's interpreter becomes the base one, whose files the sandbox has."""
    program = argv[0]
    resolved = program if "/" in program else (shutil.which(program, path=path) or program)
    if resolved == sys.executable or os.path.realpath(resolved) == os.path.realpath(sys.executable):
        return PYTHON, [PYTHON, *argv[1:]]
    return resolved, list(argv)


def _child_limits(limits: SandboxLimits, by_uid: bool) -> dict[str, int]:
    out = {k: int(v) for k, v in limits.__dict__.items() if k != "wall_s"}
    if not by_uid:  # RLIMIT_NPROC counts every process of our own uid: allow for those already running
        out["nproc"] += len(_uid_pids(os.getuid()))
    return out


def _check_name(name: str) -> str:
    parts = name.split("/")
    if not name or name.startswith("/") or any(p in ("", ".", "..") for p in parts) or "\0" in name:
        raise SandboxError(f"bad sandbox file name {name!r}: must be a relative path without '..'")
    return name


def _signame(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return str(sig)


def run_sandboxed(
    files: dict[str, str | bytes],
    argv: list[str],
    limits: SandboxLimits = SandboxLimits(),
    stdin: bytes | None = None,
    collect: Sequence[str] = (),
    *,
    writable: bool = True,
    channel: bool = False,
    env: dict[str, str] | None = None,
    packages: Sequence[str] = (),
) -> SandboxResult:
    """Run `argv` in a fresh sandbox dir holding `files`; see the module docstring for what is contained.

    `packages`: installed distributions (with their dependencies) the program may import besides the stdlib.
    An `argv[0]` that is this process's interpreter (e.g. a venv's python) runs as `PYTHON`, the base one.
    """
    if not argv:
        raise SandboxError("empty argv")
    package_paths = _package_paths(tuple(packages))
    names = [_check_name(n) for n in files]
    collect = [_check_name(n) for n in collect]
    root = os.geteuid() == 0
    lease = _UidLease() if root else None
    uid = lease.uid if lease else os.getuid()
    gid = lease.uid if lease else os.getgid()
    workdir = tempfile.mkdtemp(prefix="emlab-sb-")
    os.chmod(workdir, 0o700)
    try:
        return _run(files, names, argv, limits, stdin, collect, writable, channel, env, uid, gid, workdir,
                    lease is not None, package_paths)
    finally:
        if lease is not None:
            _kill_uid(lease.uid)
            lease.release()
        shutil.rmtree(workdir, ignore_errors=True)


def _run(files, names, argv, limits, stdin, collect, writable, channel, env, uid, gid, workdir,
         by_uid, package_paths) -> SandboxResult:
    import subprocess

    def b64(v: str | bytes) -> str:
        return base64.b64encode(v.encode() if isinstance(v, str) else v).decode()

    child_env = _minimal_env(workdir, env)
    cfg_r, cfg_w = os.pipe()
    st_r, st_w = os.pipe()
    ch_r, ch_w = os.pipe() if channel else (-1, -1)
    program, argv = _program(argv, child_env["PATH"])
    binds, masks, site_dir = _layout()
    if package_paths and site_dir is None:
        raise SandboxError(f"no site-packages dir under {sys.base_prefix} to mount the declared packages in")
    cfg = {
        "parent_pid": os.getpid(),
        "workdir": workdir,
        "writable": writable,
        "files": {n: b64(files[n]) for n in names},
        "argv": list(argv),
        "exec": program,
        "env": child_env,
        "uid": uid,
        "gid": gid,
        "limits": _child_limits(limits, by_uid),
        "newroot": workdir,
        "system": list(_SYSTEM_DIRS),
        "etc": list(_ETC),
        "binds": list(binds),
        "masks": list(masks),
        "site_dir": site_dir,
        "packages": package_paths,
        "devices": list(_DEVICES),
        "collect": list(collect),
        "channel_fd": ch_w,
    }
    pass_fds = [cfg_r, st_w] + ([ch_w] if channel else [])
    start = time.monotonic()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _LAUNCHER, str(cfg_r), str(st_w)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            pass_fds=pass_fds, start_new_session=True, env=_minimal_env(workdir, None), cwd="/",
        )
    except OSError as e:
        for fd in (cfg_r, cfg_w, st_r, st_w, ch_r, ch_w):
            if fd >= 0:
                os.close(fd)
        raise SandboxError(f"cannot start the sandbox launcher: {e}") from e
    for fd in pass_fds:
        os.close(fd)
    out = _Collector(proc, limits, start)
    out.add_writer(cfg_w, json.dumps(cfg).encode())
    out.add_writer(proc.stdin.fileno(), stdin or b"", closer=proc.stdin.close)
    out.add_reader("stdout", proc.stdout.fileno(), limits.output_bytes)
    out.add_reader("stderr", proc.stderr.fileno(), limits.output_bytes)
    out.add_reader("status", st_r, 4 * limits.collect_bytes * max(1, len(collect)) + (1 << 16), own=True)
    if channel:
        out.add_reader("channel", ch_r, limits.output_bytes, own=True)
    out.loop()
    # the end: kill the process group (outer launcher, init, target unless it left the group), then by uid
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        pass
    proc.wait()
    if by_uid:
        _kill_uid(uid)
    out.drain()
    out.close()
    wall = time.monotonic() - start

    status = out.messages("status")
    feats = [m for k, m in status if k == "iso"]
    warnings = tuple(m for k, m in status if k == "warn")
    errors = [m for k, m in status if k == "error"]
    collected: dict[str, bytes] = {}
    raw_status = None
    for kind, msg in status:
        if kind == "status":
            raw_status = int(msg)
        elif kind == "collect":
            item = json.loads(msg)
            collected[item["name"]] = base64.b64decode(item["b64"])[: limits.collect_bytes]
    if raw_status is not None:
        returncode = os.waitstatus_to_exitcode(raw_status)
    elif "pidns" in feats:
        returncode = None if out.killed_reason else proc.returncode
        if proc.returncode is not None and proc.returncode >= 128 and not out.killed_reason:
            returncode = -(proc.returncode - 128)
    else:
        returncode = proc.returncode
    killed_reason = out.killed_reason
    stderr = out.data("stderr")
    if errors:
        stderr = stderr + ("\n".join(f"[sandbox] {e}" for e in errors) + "\n").encode()
        killed_reason = killed_reason or "setup"
    if killed_reason is None and returncode is not None and returncode < 0:
        sig = -returncode
        killed_reason = {signal.SIGXCPU: "cpu", signal.SIGXFSZ: "file_size"}.get(sig, f"signal:{_signame(sig)}")
    if killed_reason is None and returncode not in (0, None) and b"MemoryError" in stderr[-4096:]:
        killed_reason = "memory"
    isolation = "+".join(feats) if feats else "rlimits-only"
    return SandboxResult(
        returncode=returncode,
        stdout=out.data("stdout"),
        stderr=stderr,
        timed_out=out.killed_reason == "timeout",
        killed_reason=killed_reason,
        truncated=out.truncated,
        wall_s=wall,
        isolation=isolation,
        collected=collected,
        channel=out.data("channel") if channel else b"",
        warnings=warnings,
        sandbox_uid=uid if by_uid else None,
    )


class _Collector:
    """Feeds stdin/config and reads every output pipe concurrently, with caps and the wall-clock deadline."""

    GRACE_S = 0.25  # after the launcher exits, how long leftover writers may keep the pipes open

    def __init__(self, proc, limits: SandboxLimits, start: float) -> None:
        self.proc, self.limits = proc, limits
        self.deadline = start + limits.wall_s
        self.sel = selectors.DefaultSelector()
        self.bufs: dict[str, bytearray] = {}
        self.caps: dict[str, int] = {}
        self.owned: list[int] = []
        self.killed_reason: str | None = None
        self.truncated = False
        self._reader_fds: dict[str, int] = {}

    def add_writer(self, fd: int, data: bytes, closer: Callable[[], None] | None = None) -> None:
        os.set_blocking(fd, False)
        close = closer or (lambda: os.close(fd))
        if not data:
            close()
            return
        self.sel.register(fd, selectors.EVENT_WRITE, ("w", memoryview(data), close))

    def add_reader(self, name: str, fd: int, cap: int, own: bool = False) -> None:
        os.set_blocking(fd, False)
        self.bufs[name] = bytearray()
        self.caps[name] = cap
        self._reader_fds[name] = fd
        if own:
            self.owned.append(fd)
        self.sel.register(fd, selectors.EVENT_READ, ("r", name))

    def _kill(self, reason: str) -> None:
        if self.killed_reason is None:
            self.killed_reason = reason
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except OSError:
            pass

    def _exited(self) -> bool:
        """Has the launcher exited? (waitid WNOWAIT: it stays unreaped, so its process group id stays ours)"""
        try:
            return os.waitid(os.P_PID, self.proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
        except ChildProcessError:
            return True

    def _readers_left(self) -> bool:
        return any(key.data[0] == "r" for key in self.sel.get_map().values())

    def _service(self, timeout: float) -> None:
        for key, _ in self.sel.select(timeout):
            if key.data[0] == "w":
                _, view, close = key.data
                try:
                    n = os.write(key.fd, view[: 1 << 16])
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:  # the reader went away
                    n = len(view)
                rest = view[n:]
                if len(rest):
                    self.sel.modify(key.fd, selectors.EVENT_WRITE, ("w", rest, close))
                else:
                    self.sel.unregister(key.fd)
                    close()
                continue
            name = key.data[1]
            try:
                chunk = os.read(key.fd, 1 << 16)
            except (BlockingIOError, InterruptedError):
                continue
            if not chunk:
                self.sel.unregister(key.fd)
                continue
            buf = self.bufs[name]
            room = self.caps[name] - len(buf)
            buf += chunk[: max(room, 0)]
            if len(chunk) > room:
                self.truncated = True
                self._kill("output_limit")

    def loop(self) -> None:
        """Run until the program and everything holding its pipes is done, or a limit is hit."""
        exited_at = None
        while self._readers_left():
            now = time.monotonic()
            if self.killed_reason is None and now >= self.deadline:
                self._kill("timeout")
            if exited_at is None and self._exited():
                exited_at = now
            if exited_at is not None and now - exited_at > self.GRACE_S:
                break  # a left-over process holds the pipes open; it is killed by the caller
            if self.killed_reason is not None and exited_at is not None and now - exited_at > 0.05:
                break
            self._service(max(0.0, min(0.05, self.deadline - now)) if self.killed_reason is None else 0.02)

    def drain(self) -> None:
        """Read whatever is still buffered in the pipes (without waiting for writers)."""
        for key in list(self.sel.get_map().values()):
            if key.data[0] != "r":
                continue
            while True:
                try:
                    chunk = os.read(key.fd, 1 << 16)
                except OSError:
                    break
                if not chunk:
                    break
                buf = self.bufs[key.data[1]]
                room = self.caps[key.data[1]] - len(buf)
                buf += chunk[: max(room, 0)]
                if len(chunk) > room:
                    self.truncated = True
                    break

    def close(self) -> None:
        for key in list(self.sel.get_map().values()):
            self.sel.unregister(key.fd)
            if key.data[0] == "w":
                key.data[2]()
        self.sel.close()
        for fd in self.owned:
            try:
                os.close(fd)
            except OSError:
                pass
        for stream in (self.proc.stdout, self.proc.stderr):
            stream.close()
        if self.proc.stdin and not self.proc.stdin.closed:
            try:
                self.proc.stdin.close()
            except OSError:
                pass

    def data(self, name: str) -> bytes:
        return bytes(self.bufs.get(name, b""))

    def messages(self, name: str) -> list[tuple[str, str]]:
        out = []
        for line in self.bufs.get(name, b"").decode("utf-8", "replace").splitlines():
            kind, _, rest = line.partition(" ")
            out.append((kind, rest))
        return out


def run_many(
    jobs: Iterable[Callable[[], object]] | Iterable[dict], workers: int = 2
) -> list:
    """Run jobs (zero-argument callables, or kwargs dicts for `run_sandboxed`) on `workers` threads, in order."""
    def call(job):
        return job() if callable(job) else run_sandboxed(**job)

    jobs = list(jobs)
    if workers <= 1:
        return [call(j) for j in jobs]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(call, jobs))
