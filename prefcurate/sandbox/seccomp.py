"""A seccomp-bpf filter, hand-written and installed through ctypes `prctl` (no extra package).

The filter is a deny list: the syscalls a confined program could use to reach anything outside
its own address space and its one inherited socket (open or create files, sockets, exec,
processes and threads, signals to other processes, namespaces, mounts, ptrace, keyrings,
io_uring, SysV IPC, raising limits) fail with EPERM; every other syscall CPython needs to
compute (memory, futex, clocks, read/write on open descriptors, exit) is allowed. A foreign
architecture or the x32 ABI kills the process. Only x86_64 and aarch64 have tables here;
elsewhere the layer reports itself unavailable.
"""

from __future__ import annotations

import ctypes
import errno
import platform
import struct

PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
_RET_KILL_PROCESS = 0x80000000
_RET_ERRNO = 0x00050000
_RET_ALLOW = 0x7FFF0000
_LD_W_ABS = 0x20
_JEQ_K = 0x15
_JGE_K = 0x35
_RET_K = 0x06
_X32_BIT = 0x40000000

_X86_64 = {
    # files: open, create, rename, link, remove, change metadata, read links
    "open": 2, "openat": 257, "openat2": 437, "creat": 85, "open_by_handle_at": 304,
    "name_to_handle_at": 303, "rename": 82, "renameat": 264, "renameat2": 316, "mkdir": 83,
    "mkdirat": 258, "rmdir": 84, "link": 86, "linkat": 265, "unlink": 87, "unlinkat": 263,
    "symlink": 88, "symlinkat": 266, "readlink": 89, "readlinkat": 267, "chmod": 90, "fchmod": 91,
    "fchmodat": 268, "chown": 92, "fchown": 93, "lchown": 94, "fchownat": 260, "mknod": 133,
    "mknodat": 259, "truncate": 76, "utime": 132, "utimes": 235, "utimensat": 280, "futimesat": 261,
    "setxattr": 188, "lsetxattr": 189, "fsetxattr": 190, "removexattr": 197, "lremovexattr": 198,
    "fremovexattr": 199, "memfd_create": 319, "uselib": 134, "chroot": 161, "pivot_root": 155,
    "mount": 165, "umount2": 166, "open_tree": 428, "move_mount": 429, "fsopen": 430,
    "fsconfig": 431, "fsmount": 432, "fspick": 433, "mount_setattr": 442, "swapon": 167,
    "swapoff": 168, "quotactl": 179, "fanotify_init": 300, "acct": 163,
    # network
    "socket": 41, "socketpair": 53, "connect": 42, "bind": 49, "listen": 50, "accept": 43,
    "accept4": 288,
    # processes, threads, exec, signals to others, tracing
    "clone": 56, "clone3": 435, "fork": 57, "vfork": 58, "execve": 59, "execveat": 322, "kill": 62,
    "tkill": 200, "tgkill": 234, "rt_sigqueueinfo": 129, "rt_tgsigqueueinfo": 297,
    "pidfd_open": 434, "pidfd_send_signal": 424, "pidfd_getfd": 438, "ptrace": 101,
    "process_vm_readv": 310, "process_vm_writev": 311, "process_madvise": 440, "kcmp": 312,
    "setpgid": 109, "setsid": 112, "prctl": 157, "personality": 135,
    # identity, limits, namespaces
    "setuid": 105, "setgid": 106, "setreuid": 113, "setregid": 114, "setgroups": 116,
    "setresuid": 117, "setresgid": 119, "setfsuid": 122, "setfsgid": 123, "setrlimit": 160,
    "prlimit64": 302, "unshare": 272, "setns": 308,
    # kernel facilities a computation never needs
    "bpf": 321, "perf_event_open": 298, "userfaultfd": 323, "io_uring_setup": 425,
    "io_uring_enter": 426, "io_uring_register": 427, "io_setup": 206, "add_key": 248,
    "request_key": 249, "keyctl": 250, "init_module": 175, "finit_module": 313,
    "delete_module": 176, "kexec_load": 246, "kexec_file_load": 320, "reboot": 169,
    "sethostname": 170, "setdomainname": 171, "iopl": 172, "ioperm": 173, "syslog": 103,
    "settimeofday": 164, "clock_settime": 227, "adjtimex": 159, "clock_adjtime": 305,
    "vhangup": 153, "shmget": 29, "shmat": 30, "shmctl": 31, "semget": 64, "semop": 65,
    "semctl": 66, "semtimedop": 220, "msgget": 68, "msgsnd": 69, "msgrcv": 70, "msgctl": 71,
    "mq_open": 240, "mq_unlink": 241, "seccomp": 317,
}  # fmt: skip

# asm-generic numbering (aarch64 has no open/creat/fork/... : only the *at forms exist).
_AARCH64 = {
    "openat": 56, "openat2": 437, "open_by_handle_at": 265, "name_to_handle_at": 264,
    "renameat": 38, "renameat2": 276, "mkdirat": 34, "linkat": 37, "unlinkat": 35, "symlinkat": 36,
    "readlinkat": 78, "fchmod": 52, "fchmodat": 53, "fchown": 55, "fchownat": 54, "mknodat": 33,
    "truncate": 45, "utimensat": 88, "setxattr": 5, "lsetxattr": 6, "fsetxattr": 7,
    "removexattr": 14, "lremovexattr": 15, "fremovexattr": 16, "memfd_create": 279, "chroot": 51,
    "pivot_root": 41, "mount": 40, "umount2": 39, "open_tree": 428, "move_mount": 429,
    "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433, "mount_setattr": 442,
    "swapon": 224, "swapoff": 225, "quotactl": 60, "fanotify_init": 262, "acct": 89,
    "socket": 198, "socketpair": 199, "connect": 203, "bind": 200, "listen": 201, "accept": 202,
    "accept4": 242, "clone": 220, "clone3": 435, "execve": 221, "execveat": 281, "kill": 129,
    "tkill": 130, "tgkill": 131, "rt_sigqueueinfo": 138, "rt_tgsigqueueinfo": 240,
    "pidfd_open": 434, "pidfd_send_signal": 424, "pidfd_getfd": 438, "ptrace": 117,
    "process_vm_readv": 270, "process_vm_writev": 271, "process_madvise": 440, "kcmp": 272,
    "setpgid": 154, "setsid": 157, "prctl": 167, "personality": 92, "setuid": 146, "setgid": 144,
    "setreuid": 145, "setregid": 143, "setgroups": 159, "setresuid": 147, "setresgid": 149,
    "setfsuid": 151, "setfsgid": 152, "setrlimit": 164, "prlimit64": 261, "unshare": 97,
    "setns": 268, "bpf": 280, "perf_event_open": 241, "userfaultfd": 282, "io_uring_setup": 425,
    "io_uring_enter": 426, "io_uring_register": 427, "io_setup": 0, "add_key": 217,
    "request_key": 218, "keyctl": 219, "init_module": 105, "finit_module": 273,
    "delete_module": 106, "kexec_load": 104, "kexec_file_load": 294, "reboot": 142,
    "sethostname": 161, "setdomainname": 162, "syslog": 116, "settimeofday": 170,
    "clock_settime": 112, "adjtimex": 171, "clock_adjtime": 266, "vhangup": 58, "shmget": 194,
    "shmat": 196, "shmctl": 195, "semget": 190, "semop": 193, "semctl": 191, "semtimedop": 192,
    "msgget": 186, "msgsnd": 189, "msgrcv": 188, "msgctl": 187, "mq_open": 180, "mq_unlink": 181,
    "seccomp": 277,
}  # fmt: skip

_ARCHES = {"x86_64": (0xC000003E, _X86_64), "aarch64": (0xC00000B7, _AARCH64)}


def _insn(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def build_filter(machine: str | None = None) -> bytes | None:
    """The BPF program (raw sock_filter array), or None on an architecture without a table."""
    arch = _ARCHES.get(machine or platform.machine())
    if arch is None:
        return None
    audit_arch, table = arch
    numbers = sorted(set(table.values()))
    prog = [
        _insn(_LD_W_ABS, 0, 0, 4),  # seccomp_data.arch
        _insn(_JEQ_K, 1, 0, audit_arch),
        _insn(_RET_K, 0, 0, _RET_KILL_PROCESS),
        _insn(_LD_W_ABS, 0, 0, 0),  # seccomp_data.nr
    ]
    if audit_arch == 0xC000003E:  # x32 syscalls share the arch value: refuse that ABI outright
        prog.append(_insn(_JGE_K, len(numbers) + 1, 0, _X32_BIT))
    for i, nr in enumerate(numbers):
        # jump to the EPERM return at the end: skip the remaining checks and the ALLOW.
        prog.append(_insn(_JEQ_K, len(numbers) - i, 0, nr))
    prog.append(_insn(_RET_K, 0, 0, _RET_ALLOW))
    prog.append(_insn(_RET_K, 0, 0, _RET_ERRNO | errno.EPERM))
    return b"".join(prog)


_PREPARED: list[bytes | None] = []


def prepared_filter() -> bytes | None:
    """The filter for this machine, built once per process (the zygote builds it for its children)."""
    if not _PREPARED:
        _PREPARED.append(build_filter())
    return _PREPARED[0]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def install(libc: ctypes.CDLL) -> str | None:
    """Install the filter on the calling (only) thread. None on success, else why not."""
    raw = prepared_filter()
    if raw is None:
        return f"no syscall table for {platform.machine()}"
    buf = ctypes.create_string_buffer(raw, len(raw))
    prog = _SockFprog(len(raw) // 8, ctypes.cast(buf, ctypes.c_void_p))
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0) != 0:
        return "prctl(PR_SET_SECCOMP): " + errno.errorcode.get(ctypes.get_errno(), "error")
    return None
