"""The sandbox against hostile programs: each must be contained and labelled, and this process must survive."""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path

import pytest

from emlab.envs.sandbox import SandboxError, SandboxLimits, _uid_pids, run_many, run_sandboxed

ROOT = os.geteuid() == 0
FAST = SandboxLimits(wall_s=5.0)


def py(code: str, limits: SandboxLimits = FAST, **kw):
    """Run `code` as a.py with the current interpreter in the sandbox."""
    return run_sandboxed({"a.py": code}, [sys.executable, "-I", "a.py"], limits, **kw)


def contained(result) -> None:
    """Skip (with the reason) when this machine gave no namespace isolation at all."""
    if result.isolation == "rlimits-only":
        pytest.skip(f"no namespaces on this machine (isolation={result.isolation}): {result.warnings}")


def processes_with(marker: str) -> list[int]:
    """Host pids whose command line contains `marker`."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                cmdline = Path(f"/proc/{name}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if marker in cmdline:
                found.append(int(name))
    return found


def test_runs_python_under_the_default_limits_and_reports_isolation():
    result = run_sandboxed({"a.py": "import json, sys\nprint(json.dumps(sys.argv[1:]))\n"},
                           [sys.executable, "-I", "a.py", "x"])
    assert result.ok, result.stderr_text
    assert result.stdout_text == '["x"]\n'
    assert not result.timed_out and result.killed_reason is None and not result.truncated
    if not ROOT:
        pytest.skip(f"strong isolation needs root; got {result.isolation}")
    assert {"uid", "netns", "mntns", "pidns"} <= set(result.isolation.split("+"))
    assert result.sandbox_uid is not None and 61000 <= result.sandbox_uid < 62000
    assert result.warnings == ()


def test_stdin_channel_collect_and_read_only_dir():
    code = (
        "import os, sys\n"
        "data = sys.stdin.read()\n"
        "os.write(3, b'side:' + data.encode())\n"
        "print(data.upper())\n"
        "open('out/result.txt', 'w').write('done')\n"
        "os.symlink('/etc/passwd', 'out/leak.txt')\n"
    )
    result = run_sandboxed({"a.py": code, "out/keep": ""}, [sys.executable, "-I", "a.py"], FAST, stdin=b"hello",
                           collect=["out/result.txt", "out/leak.txt", "missing.txt"], channel=True)
    assert result.ok, result.stderr_text
    assert result.stdout_text == "HELLO\n"
    assert result.channel == b"side:hello"
    assert result.collected == {"out/result.txt": b"done"}  # the symlink is not followed
    readonly = py("open('x', 'w')", writable=False)
    assert readonly.returncode == 1 and ("Read-only" in readonly.stderr_text or "Permission" in readonly.stderr_text)


def test_collected_files_are_size_capped():
    result = py("open('big', 'wb').write(b'x' * 100000)", SandboxLimits(wall_s=5, collect_bytes=1000), collect=["big"])
    assert result.collected["big"] == b"x" * 1000


def test_bad_file_names_are_refused():
    for name in ("../escape.py", "/etc/passwd", "a/../../b", ""):
        with pytest.raises(SandboxError):
            run_sandboxed({name: "x"}, [sys.executable, "-I", "a.py"])


def test_infinite_loop_times_out():
    start = time.monotonic()
    result = py("while True:\n    pass\n", SandboxLimits(wall_s=1.0))
    assert result.timed_out and result.killed_reason == "timeout"
    assert time.monotonic() - start < 4


def test_cpu_limit_kills_a_busy_loop():
    result = py("while True:\n    pass\n", SandboxLimits(wall_s=6.0, cpu_s=1))
    assert result.killed_reason == "cpu" and not result.timed_out


def test_memory_hog_is_stopped():
    result = py("blocks = []\nwhile True:\n    blocks.append(bytearray(16 << 20))\n",
                SandboxLimits(wall_s=5.0, memory_bytes=256 << 20))
    assert result.killed_reason == "memory" and result.returncode != 0
    big = py("x = bytearray(4 << 30)\n")
    assert big.killed_reason == "memory"


def test_output_flood_is_truncated_and_killed():
    result = py("import sys\nwhile True:\n    sys.stdout.write('x' * 65536)\n",
                SandboxLimits(wall_s=5.0, output_bytes=100_000))
    assert result.truncated and result.killed_reason == "output_limit"
    assert len(result.stdout) == 100_000
    err = py("import sys\nwhile True:\n    sys.stderr.write('y' * 65536)\n", SandboxLimits(wall_s=5.0, output_bytes=50_000))
    assert err.truncated and err.killed_reason == "output_limit" and len(err.stderr) == 50_000


def test_file_size_limit():
    result = py("open('big', 'wb').write(b'x' * (4 << 20))\n", SandboxLimits(wall_s=5.0, fsize_bytes=1 << 20))
    assert result.returncode != 0 and "File too large" in result.stderr_text


def test_fork_bomb_is_bounded_and_cleaned_up():
    if not ROOT:
        pytest.skip("RLIMIT_NPROC per sandbox needs a dedicated uid (root)")
    marker = f"29.{time.time_ns() % 10**9:09d}"  # seconds: even an escaped child ends by itself
    code = (  # bounded on purpose: even with no limit it stops after 200 children that exit by themselves
        "import os, sys, time\n"
        "n, err = 0, None\n"
        "for _ in range(200):\n"
        "    try:\n"
        "        pid = os.fork()\n"
        "    except OSError as e:\n"
        "        err = type(e).__name__\n"
        "        break\n"
        "    if pid == 0:\n"
        f"        os.execv('/bin/sleep', ['sleep', '{marker}'])\n"
        "    n += 1\n"
        "print(n, err)\n"
    )
    result = py(code, SandboxLimits(wall_s=10.0, nproc=24))
    n, err = result.stdout_text.split()
    assert int(n) < 24 and err == "BlockingIOError", result.stdout_text
    assert processes_with(f"sleep {marker}") == []
    assert _uid_pids(result.sandbox_uid) == []


def test_secrets_in_the_parent_environment_do_not_reach_the_child(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
    monkeypatch.setenv("HF_TOKEN", "hf_not_a_real_token")
    code = (
        "import json, os\n"
        "seen = dict(os.environ)\n"
        "for pid in os.listdir('/proc'):\n"
        "    try:\n"
        "        seen['/proc/' + pid] = open('/proc/%s/environ' % pid, 'rb').read().decode('latin1')\n"
        "    except (OSError, ValueError):\n"
        "        pass\n"
        "print(json.dumps(seen))\n"
    )
    result = py(code)
    assert result.ok, result.stderr_text
    assert "sk-test-not-a-real-key" not in result.stdout_text and "hf_not_a_real" not in result.stdout_text
    import json

    env = {k: v for k, v in json.loads(result.stdout_text).items() if not k.startswith("/proc/")}
    assert env["LANG"] == "C.UTF-8" and env["PYTHONHASHSEED"] == "0" and env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert set(env) <= {"PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "PYTHONDONTWRITEBYTECODE", "PYTHONHASHSEED",
                        "PYTHONUNBUFFERED", "MALLOC_ARENA_MAX"}
    assert env["MALLOC_ARENA_MAX"] == "2"  # glibc's per-thread arenas would eat the address-space limit


def test_no_network_even_to_a_local_listener():
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(0.3)
    port = listener.getsockname()[1]
    try:
        code = (
            "import socket\n"
            "try:\n"
            f"    socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
            "    print('connected')\n"
            "except OSError as e:\n"
            "    print('refused', e)\n"
        )
        result = py(code)
        contained(result)
        assert result.stdout_text.startswith("refused"), result.stdout_text
        with pytest.raises(socket.timeout):
            listener.accept()
    finally:
        listener.close()


def test_writes_outside_the_sandbox_dir_fail_or_stay_contained(tmp_path):
    targets = [tmp_path / "pwned.txt", Path(__file__).resolve().parent / f"pwned-{os.getpid()}.txt",
               Path("/tmp") / f"emlab-pwned-{os.getpid()}.txt", Path("/var/tmp") / f"emlab-pwned-{os.getpid()}.txt"]
    code = "import sys\nfor p in sys.argv[1:]:\n    try:\n        open(p, 'w').write('x')\n        print('wrote', p)\n" \
           "    except OSError as e:\n        print('failed', p, type(e).__name__)\n"
    result = run_sandboxed({"a.py": code}, [sys.executable, "-I", "a.py", *map(str, targets)], FAST)
    escaped = [t for t in targets if t.exists()]
    for target in escaped:
        target.unlink()
    contained(result)
    assert result.ok, result.stderr_text
    assert escaped == [], f"the sandbox wrote {escaped}"
    # the repo and the test's tmp dir are not writable from inside at all (read-only or hidden)
    assert f"failed {targets[0]}" in result.stdout_text and f"failed {targets[1]}" in result.stdout_text


def test_signalling_the_parent_does_not_reach_it():
    code = (
        "import os, signal, sys\n"
        "for pid in (os.getppid(), int(sys.argv[1]), 1):\n"
        "    try:\n"
        "        os.kill(pid, signal.SIGTERM)\n"
        "        print('sent', pid)\n"
        "    except OSError as e:\n"
        "        print('blocked', pid, type(e).__name__)\n"
    )
    result = run_sandboxed({"a.py": code}, [sys.executable, "-I", "a.py", str(os.getpid())], FAST)
    contained(result)
    assert "sent" not in result.stdout_text, result.stdout_text
    assert result.ok  # and we are still alive to check it


def test_background_processes_are_killed_at_the_end():
    marker = f"59.{time.time_ns() % 10**9:09d}"
    code = (
        "import os, subprocess, time\n"
        f"subprocess.Popen(['/bin/sleep', '{marker}'], start_new_session=True)\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        f"        os.execv('/bin/sleep', ['sleep', '{marker}'])\n"
        "    os._exit(0)\n"
        "time.sleep(0.2)\n"
        "print('left them running')\n"
    )
    start = time.monotonic()
    result = py(code)
    assert result.stdout_text == "left them running\n", result.stderr_text
    assert time.monotonic() - start < 5
    if result.sandbox_uid is None and "pidns" not in result.isolation:
        pytest.skip(f"leftover processes can only be found by uid or PID namespace (isolation={result.isolation})")
    assert processes_with(f"sleep {marker}") == []
    if result.sandbox_uid is not None:
        assert _uid_pids(result.sandbox_uid) == []


def test_parallel_runs_get_their_own_uid_and_dir():
    code = "import os, time\ntime.sleep(0.3)\nprint(os.getuid(), os.getcwd(), sorted(os.listdir('.')))\n"
    jobs = [dict(files={"a.py": code, f"own{i}.txt": ""}, argv=[sys.executable, "-I", "a.py"], limits=FAST)
            for i in range(4)]
    results = run_many(jobs, workers=2)
    assert all(r.ok for r in results), [r.stderr_text for r in results]
    lines = [r.stdout_text.split(" ", 2) for r in results]
    assert len({cwd for _, cwd, _ in lines}) == 4
    for i, (_, _, listing) in enumerate(lines):
        assert f"own{i}.txt" in listing and all(f"own{j}.txt" not in listing for j in range(4) if j != i)
    if ROOT:
        assert len({r.sandbox_uid for r in results[:2]}) == 2
