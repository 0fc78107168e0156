"""Landlock through ctypes: a ruleset that handles every access right the kernel knows and
grants none, so the calling thread can no longer open, create, remove, execute or read any file
or directory, bind or connect TCP ports (ABI 4+), reach abstract unix sockets or signal
processes outside its own domain (ABI 6+). Descriptors already open keep working.
"""

from __future__ import annotations

import ctypes
import errno
import struct

_CREATE_RULESET, _RESTRICT_SELF = 444, 446  # the same numbers on every architecture
_VERSION = 1
# Filesystem rights by ABI version: 1 -> bits 0-12, 2 -> REFER, 3 -> TRUNCATE, 5 -> IOCTL_DEV.
_FS_BITS = {1: 13, 2: 14, 3: 15, 4: 15, 5: 16}
_NET_BIND_CONNECT_TCP = 0b11
_SCOPE_ABSTRACT_UNIX_AND_SIGNAL = 0b11


def abi_version(libc: ctypes.CDLL) -> int:
    """The kernel's Landlock ABI, or 0 when Landlock is absent or disabled."""
    libc.syscall.restype = ctypes.c_long
    version = libc.syscall(_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(_VERSION))
    return max(0, int(version))


def restrict_self(libc: ctypes.CDLL) -> tuple[int, str | None]:
    """(abi, None) once the calling thread is confined; (abi, why) when it could not be."""
    abi = abi_version(libc)
    if abi < 1:
        return 0, "Landlock not available (kernel without it, or not in the LSM list)"
    fs = (1 << _FS_BITS[min(abi, 5)]) - 1
    if abi >= 6:
        attr = struct.pack("=QQQ", fs, _NET_BIND_CONNECT_TCP, _SCOPE_ABSTRACT_UNIX_AND_SIGNAL)
    elif abi >= 4:
        attr = struct.pack("=QQ", fs, _NET_BIND_CONNECT_TCP)
    else:
        attr = struct.pack("=Q", fs)
    buf = ctypes.create_string_buffer(attr, len(attr))
    fd = libc.syscall(_CREATE_RULESET, buf, ctypes.c_size_t(len(attr)), ctypes.c_uint32(0))
    if fd < 0:
        return abi, "landlock_create_ruleset: " + errno.errorcode.get(ctypes.get_errno(), "error")
    try:
        if libc.syscall(_RESTRICT_SELF, ctypes.c_int(fd), ctypes.c_uint32(0)) != 0:
            return abi, "landlock_restrict_self: " + errno.errorcode.get(ctypes.get_errno(), "error")
    finally:
        libc.close(ctypes.c_int(fd))
    return abi, None
