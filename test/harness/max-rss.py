#!/usr/bin/env python3
"""Runs one command and reports how it ended and its peak resident memory.

    max-rss.py --report FILE [--timeout SECONDS] -- COMMAND [ARG...]

The command inherits stdin, stdout and stderr. It runs in a session of its own so that on timeout the
whole process group is killed (SIGKILL), helpers included. FILE receives one JSON object:
{"exitCode": int|null, "signal": int|null, "timedOut": bool, "maxRssKiB": int, "wallMs": int}.
The peak comes from getrusage(RUSAGE_CHILDREN) after the wait: on Linux that is the largest RSS of
any waited-for descendant, in KiB. The wrapper exits 0 unless it could not start the command (127).
Used by the restore fuzz test to hold every restore to a memory and time bound.
"""
import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import time


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--report", required=True, help="where to write the JSON report")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds before the command is killed")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given")

    started = time.monotonic()
    try:
        child = subprocess.Popen(command, start_new_session=True)
    except OSError as err:
        print(f"max-rss.py: cannot start {command[0]}: {err}", file=sys.stderr)
        return 127
    timed_out = False
    try:
        child.wait(timeout=args.timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        try:
            os.killpg(child.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        child.wait()
    # Whatever the command left behind in its group goes too (a stray helper must not outlive it).
    try:
        os.killpg(child.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    wall_ms = int((time.monotonic() - started) * 1000)
    code = child.returncode
    report = {
        "exitCode": code if code >= 0 else None,
        "signal": -code if code < 0 else None,
        "timedOut": timed_out,
        "maxRssKiB": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
        "wallMs": wall_ms,
    }
    with open(args.report, "w", encoding="utf-8") as out:
        json.dump(report, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
