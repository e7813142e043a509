"""Process confinement for one Code call, applied in the forked child before the user's code runs.

Layers, each best effort (``probe()`` reports which ones this host offers, the worker logs it):
- resource limits: CPU seconds, address space (on top of what the child already maps), processes, file size,
  open files, no core dumps;
- as root: a fresh network namespace (``unshare(CLONE_NEWNET)`` through ctypes: Python 3.11 has no
  ``os.unshare``), then no groups and an unprivileged uid/gid;
- Landlock (Linux >= 5.13, no privilege needed): reads limited to the Python installation and system folders,
  writes to the scratch folder only; no TCP (ABI 4+); no signals to processes outside (ABI 6+);
- seccomp (no privilege needed, ``no_new_privs``): ``socket()``, new processes (threads are fine) and a list of
  escape hatches (ptrace, mount, namespaces, keyrings, bpf, io_uring, leaving the process group, signalling the
  worker) fail with EPERM.
When the sandbox uid cannot read the Python installation (e.g. pyenv under /root), a root worker keeps uid 0 but
drops every capability, and relies on Landlock for the file system (root is exempt from RLIMIT_NPROC: seccomp's
no-new-process rule covers that).
In a hardened container (``--network none``, read-only root, non-root) the container adds its own walls.
"""

from __future__ import annotations

import ctypes
import os
import platform
import resource
import site
import struct
import sys
from dataclasses import dataclass

CLONE_NEWNET, CLONE_NEWNS = 0x40000000, 0x00020000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = (
    1, 2, 4, 8, 32, 4096, 16384, 1 << 18)
_MOUNT_FLAGS = {"nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC, "noatime": 1024, "nodiratime": 2048,
                "relatime": 1 << 21}
PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2
_LIBC = ctypes.CDLL(None, use_errno=True)
_LIBC.syscall.restype = ctypes.c_long


@dataclass
class Limits:
    timeout: float = 30.0          # wall-clock seconds; the CPU limit is this, rounded up, plus one
    memory_mb: int = 512           # address space the code may add to the forked child
    nproc: int = 32                # processes and threads (per uid: root mode uses a dedicated uid)
    fsize_mb: int = 64             # largest file the code may write
    nofile: int = 256              # open file descriptors

    def clamp(self, asked: dict | None) -> Limits:
        """Per-call limits may lower the worker's, never raise them."""
        asked = asked or {}
        out = Limits(**vars(self))
        for key, cap in vars(self).items():
            value = asked.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
                setattr(out, key, type(cap)(min(value, cap)))
        return out


def _errno_call(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def unshare_net() -> None:
    _errno_call(_LIBC.unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)")


def _mount(source: str | None, target: str, flags: int) -> int:
    enc = (lambda v: v.encode() if v is not None else None)
    return _LIBC.mount(enc(source), enc(target), None, ctypes.c_ulong(flags), None)


def readonly_mounts(scratch: str) -> None:
    """The file-system wall where Landlock is missing (root with CAP_SYS_ADMIN): a private mount namespace in which
    every mount is read-only except the scratch folder, bound onto itself first."""
    _errno_call(_LIBC.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    _errno_call(_mount(None, "/", MS_REC | MS_PRIVATE), "mount --make-rprivate /")
    _errno_call(_mount(scratch, scratch, MS_BIND | MS_REC), "bind the scratch folder")
    with open("/proc/self/mountinfo") as f:
        mounts = [(line.split()[4], line.split()[5]) for line in f]
    real = os.path.realpath(scratch)
    for target, options in mounts:
        if target == real or target.startswith(real + os.sep):
            continue
        flags = MS_REMOUNT | MS_BIND | MS_RDONLY
        for opt in options.split(","):
            flags |= _MOUNT_FLAGS.get(opt, 0)
        _mount(None, target.encode().decode("unicode_escape"), flags)     # best effort: /proc parts may refuse
    if _mount(None, "/", MS_REMOUNT | MS_BIND | MS_RDONLY) != 0 and ctypes.get_errno() not in (0, 16):
        _errno_call(-1, "remount / read-only")


def set_limits(limits: Limits, nproc_base: int = 0) -> None:
    cpu = int(limits.timeout) + 2
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    with open("/proc/self/statm") as f:
        mapped = int(f.read().split()[0]) * resource.getpagesize()
    memory = mapped + limits.memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_NPROC, (nproc_base + limits.nproc,) * 2)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits.fsize_mb * 1024 * 1024,) * 2)
    resource.setrlimit(resource.RLIMIT_NOFILE, (limits.nofile,) * 2)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def drop_privileges(uid: int, gid: int) -> None:
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)
    if os.getuid() != uid or os.geteuid() != uid:
        raise OSError("could not drop privileges")


def drop_capabilities() -> None:
    """Root without capabilities (uid stays 0): used when the sandbox uid could not read the Python installation.
    Clears the bounding, ambient, effective, permitted and inheritable sets."""
    for cap in range(64):
        if _LIBC.prctl(24, cap, 0, 0, 0) != 0 and ctypes.get_errno() == 22:     # PR_CAPBSET_DROP; EINVAL: done
            break
    _LIBC.prctl(47, 4, 0, 0, 0)                                               # PR_CAP_AMBIENT_CLEAR_ALL
    header = struct.pack("=Ii", 0x20080522, 0)                                # _LINUX_CAPABILITY_VERSION_3
    data = ctypes.create_string_buffer(24)
    _errno_call(_LIBC.capset(ctypes.create_string_buffer(header, 8), data), "capset")


def readable_by_others(path: str) -> bool:
    """Can an unrelated uid read ``path`` (o+x on every parent folder, o+r+x on the folder itself)?"""
    path = os.path.realpath(path)
    parts = path.split(os.sep)
    for i in range(1, len(parts) + 1):
        sub = os.sep.join(parts[:i]) or os.sep
        try:
            mode = os.stat(sub).st_mode
        except OSError:
            return False
        need = 0o005 if i == len(parts) else 0o001
        if mode & need != need:
            return False
    return True


def not_dumpable() -> None:
    """PR_SET_DUMPABLE 0: this process's /proc files belong to root and it cannot be ptraced by its uid."""
    _LIBC.prctl(4, 0, 0, 0, 0)


def no_new_privs() -> None:
    _errno_call(_LIBC.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(NO_NEW_PRIVS)")


# ------------------------------------------------------------------------------------------------ Landlock
_LL_CREATE, _LL_ADD, _LL_RESTRICT = 444, 445, 446
_FS_READ = (1 << 0) | (1 << 2) | (1 << 3)              # execute, read file, read dir
_FILE_RIGHTS = (1 << 0) | (1 << 1) | (1 << 2) | (1 << 14) | (1 << 15)


def landlock_abi() -> int:
    ver = _LIBC.syscall(_LL_CREATE, None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    return int(ver) if ver > 0 else 0


def _fs_handled(abi: int) -> int:
    mask = (1 << 13) - 1
    if abi >= 2:
        mask |= 1 << 13
    if abi >= 3:
        mask |= 1 << 14
    if abi >= 5:
        mask |= 1 << 15
    return mask


def read_roots() -> list[str]:
    """Folders the code may read: the Python installation, its site-packages, system libraries and /etc."""
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, "/usr", "/lib", "/lib64",
             "/etc/localtime", "/bin", "/sbin"}
    try:
        roots.update(site.getsitepackages())
        roots.add(site.getusersitepackages())
    except AttributeError:
        pass
    return sorted(r for r in roots if r and os.path.exists(r))


def landlock(scratch: str, abi: int) -> None:
    fs = _fs_handled(abi)
    attr = struct.pack("QQQ", fs, 3 if abi >= 4 else 0, 3 if abi >= 6 else 0)
    size = 8 if abi < 4 else 16 if abi < 6 else 24
    buf = ctypes.create_string_buffer(attr[:size], size)
    fd = _LIBC.syscall(_LL_CREATE, buf, ctypes.c_size_t(size), ctypes.c_uint32(0))
    if fd < 0:
        _errno_call(-1, "landlock_create_ruleset")
    try:
        for path in read_roots():
            _ll_rule(int(fd), path, _FS_READ)
        for path in ("/dev/null", "/dev/zero", "/dev/urandom", "/dev/random"):
            _ll_rule(int(fd), path, (1 << 2) | (1 << 1) if path == "/dev/null" else 1 << 2)
        _ll_rule(int(fd), scratch, fs)
        _errno_call(_LIBC.syscall(_LL_RESTRICT, ctypes.c_int(fd), ctypes.c_uint32(0)), "landlock_restrict_self")
    finally:
        os.close(int(fd))


def _ll_rule(ruleset: int, path: str, rights: int) -> None:
    try:
        pfd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return
    try:
        if not os.path.isdir(path):
            rights &= _FILE_RIGHTS
        attr = struct.pack("=Qi", rights, pfd)
        buf = ctypes.create_string_buffer(attr, len(attr))
        _errno_call(_LIBC.syscall(_LL_ADD, ctypes.c_int(ruleset), ctypes.c_int(1), buf, ctypes.c_uint32(0)),
                    f"landlock_add_rule({path})")
    finally:
        os.close(pfd)


# ------------------------------------------------------------------------------------------------- seccomp
_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
_DENY = {   # syscall numbers per architecture
    "x86_64": dict(socket=41, ptrace=101, mount=165, umount2=166, unshare=272, setns=308, bpf=321, keyctl=250,
                   add_key=248, request_key=249, perf_event_open=298, io_uring_setup=425, io_uring_enter=426,
                   io_uring_register=427, kexec_load=246, init_module=175, finit_module=313, delete_module=176,
                   pivot_root=155, chroot=161, userfaultfd=323, process_vm_readv=310, process_vm_writev=311,
                   setsid=112, setpgid=109, tkill=200, pidfd_open=434, pidfd_send_signal=424, open_tree=428,
                   move_mount=429, fsopen=430, fsconfig=431, fsmount=432, fspick=433, mount_setattr=442,
                   acct=163, swapon=167, swapoff=168, reboot=169, name_to_handle_at=303, open_by_handle_at=304),
    "aarch64": dict(socket=198, ptrace=117, mount=40, umount2=39, unshare=97, setns=268, bpf=280, keyctl=219,
                    add_key=217, request_key=218, perf_event_open=241, io_uring_setup=425, io_uring_enter=426,
                    io_uring_register=427, kexec_load=104, init_module=105, finit_module=273, delete_module=106,
                    pivot_root=41, chroot=51, userfaultfd=282, process_vm_readv=270, process_vm_writev=271,
                    setsid=157, setpgid=154, tkill=130, pidfd_open=434, pidfd_send_signal=424, open_tree=428,
                    move_mount=429, fsopen=430, fsconfig=431, fsmount=432, fspick=433, mount_setattr=442,
                    acct=89, swapon=224, swapoff=225, reboot=142, name_to_handle_at=264, open_by_handle_at=265),
}
_KILL = {"x86_64": (62, 234), "aarch64": (129, 131)}     # kill, tgkill: first argument checked
_FORK = {"x86_64": (57, 58), "aarch64": ()}               # fork, vfork
_CLONE = {"x86_64": (56, 435), "aarch64": (220, 435)}     # clone (threads only), clone3 (ENOSYS: glibc falls back)
CLONE_THREAD = 0x00010000
_LD, _JEQ, _JGE, _JSET, _RET = 0x20, 0x15, 0x35, 0x45, 0x06
_ALLOW, _EPERM, _ENOSYS = 0x7FFF0000, 0x00050000 | 1, 0x00050000 | 38


def seccomp_supported() -> bool:
    return platform.machine() in _ARCH


def _ins(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k & 0xFFFFFFFF)


def seccomp_program(protect_pids: tuple[int, ...], *, strict_kill: bool = False) -> bytes:
    """A filter returning EPERM for: the denied syscalls; new processes (threads are fine); kill/tgkill aimed at
    ``protect_pids`` (the worker; negative: its group) or at -1 (every process of the uid), or, with
    ``strict_kill``, at anything but the caller's own process group; and a foreign architecture."""
    machine = platform.machine()
    prog = [_ins(_LD, 0, 0, 4), _ins(_JEQ, 1, 0, _ARCH[machine]), _ins(_RET, 0, 0, _EPERM), _ins(_LD, 0, 0, 0)]
    if machine == "x86_64":
        prog += [_ins(_JGE, 0, 1, 0x40000000), _ins(_RET, 0, 0, _EPERM)]
    for nr in [*_DENY[machine].values(), *_FORK[machine]]:
        prog += [_ins(_JEQ, 0, 1, nr), _ins(_RET, 0, 0, _EPERM)]
    clone, clone3 = _CLONE[machine]
    prog += [_ins(_JEQ, 0, 1, clone3), _ins(_RET, 0, 0, _ENOSYS)]
    prog += [_ins(_JEQ, 0, 4, clone), _ins(_LD, 0, 0, 16), _ins(_JSET, 1, 0, CLONE_THREAD),
             _ins(_RET, 0, 0, _EPERM), _ins(_LD, 0, 0, 0)]
    for nr in _KILL[machine]:
        block = [_ins(_LD, 0, 0, 16)]
        if strict_kill:
            block += [_ins(_JEQ, 1, 0, 0), _ins(_RET, 0, 0, _EPERM)]
        for pid in [-1, *protect_pids]:
            block += [_ins(_JEQ, 0, 1, pid), _ins(_RET, 0, 0, _EPERM)]
        block += [_ins(_LD, 0, 0, 0)]
        prog += [_ins(_JEQ, 0, len(block), nr)] + block
    prog.append(_ins(_RET, 0, 0, _ALLOW))
    return b"".join(prog)


def seccomp(protect_pids: tuple[int, ...], *, strict_kill: bool = False) -> None:
    code = seccomp_program(protect_pids, strict_kill=strict_kill)
    buf = ctypes.create_string_buffer(code, len(code))

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    prog = SockFprog(len(code) // 8, ctypes.cast(buf, ctypes.c_void_p))
    _errno_call(_LIBC.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0), "seccomp")


def probe(action) -> bool:
    """Does ``action()`` succeed here? Tried in a throwaway child, so this process keeps its privileges."""
    pid = os.fork()
    if pid == 0:
        try:
            action()
            os._exit(0)
        except BaseException:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    return os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def probe_mountns() -> bool:
    """Can this process make a private read-only mount namespace (root with CAP_SYS_ADMIN)?"""
    return os.geteuid() == 0 and probe(lambda: _errno_call(_LIBC.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)"))


def probe_netns() -> bool:
    """Can this process create network namespaces (root with CAP_SYS_ADMIN)?"""
    return os.geteuid() == 0 and probe(unshare_net)
