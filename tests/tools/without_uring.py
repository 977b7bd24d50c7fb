#!/usr/bin/python3
"""Run a command with io_uring_setup(2) refused (EPERM) by a seccomp filter,
as container runtimes' default profiles do.

    /usr/bin/python3 tests/tools/without_uring.py PROGRAM [ARGS...]

Needs Debian's python3-seccomp (for /usr/bin/python3).
"""
import errno
import os
import sys

import seccomp

f = seccomp.SyscallFilter(seccomp.ALLOW)
f.add_rule(seccomp.ERRNO(errno.EPERM), "io_uring_setup")
f.load()
os.execv(sys.argv[1], sys.argv[1:])
