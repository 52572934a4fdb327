"""A process a test controls through stdin: allocate memory, burn CPU, start a child, exit.

Each command is answered on stdout (``ok <figure>``) once done, so a test knows the state it
samples. ``alloc N``: keep N more MB (touched, so resident); ``burn S``: busy-loop S seconds and
answer the CPU seconds this process used so far; ``spawn N``: start a child that keeps N MB;
``free``: drop what ``alloc`` kept; ``metrics``: serve its own Prometheus ``/metrics`` (prometheus_client's
process collector: real CPU seconds and resident memory) on a loopback port and answer the port.
"""

from __future__ import annotations

import subprocess
import sys
import time

kept: list[bytearray] = []
children: list[subprocess.Popen[str]] = []


def main() -> None:
    print("ready", flush=True)
    for line in sys.stdin:
        command, _, argument = line.strip().partition(" ")
        if command == "alloc":
            block = bytearray(int(argument) * 1_000_000)
            for i in range(0, len(block), 4096):
                block[i] = 1
            kept.append(block)
            print("ok", flush=True)
        elif command == "free":
            kept.clear()
            print("ok", flush=True)
        elif command == "burn":
            end = time.perf_counter() + float(argument)
            while time.perf_counter() < end:
                pass
            print(f"ok {time.process_time():.6f}", flush=True)
        elif command == "cpu":
            print(f"ok {time.process_time():.6f}", flush=True)
        elif command == "spawn":
            child = subprocess.Popen(
                [sys.executable, __file__], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
            )
            assert child.stdin is not None
            assert child.stdout is not None
            child.stdout.readline()
            child.stdin.write(f"alloc {argument}\n")
            child.stdin.flush()
            child.stdout.readline()
            children.append(child)
            print(f"ok {child.pid}", flush=True)
        elif command == "metrics":
            from prometheus_client import start_http_server

            server, _thread = start_http_server(0, addr="127.0.0.1")
            print(f"ok {server.server_port}", flush=True)
        elif command == "exit":
            break
    for child in children:
        child.kill()
        child.wait()


if __name__ == "__main__":
    main()
