"""A throwaway PostgreSQL server from Debian's binaries (initdb + pg_ctl), on 127.0.0.1 and a free port.

Used by the queue tests and benchmarks/bench_queue_claims.py. initdb refuses to run as root, so as
root the cluster belongs to the `postgres` user (created by Debian's package) and lives in a
directory of its own under /tmp (pytest's tmp_path is private to root).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path


def postgres_bin_dir() -> Path | None:
    """Debian's newest /usr/lib/postgresql/<version>/bin holding initdb, or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("initdb")
    return Path(on_path).parent if on_path else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PostgresServer:
    bin_dir: Path
    root: Path
    port: int
    user: str = "i2vmon"
    _run_as: str | None = None

    @property
    def url(self) -> str:
        return self.database_url("postgres")

    def database_url(self, name: str) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{name}"

    def _cmd(self, *args: str) -> list[str]:
        if self._run_as is None:
            return list(args)
        return ["runuser", "-u", self._run_as, "--", *args]

    @classmethod
    def start(cls, bin_dir: Path | None = None) -> "PostgresServer":
        bin_dir = bin_dir or postgres_bin_dir()
        if bin_dir is None:
            raise FileNotFoundError("PostgreSQL binaries not found (apt-get install postgresql, or scripts/setup dev)")
        root = Path(tempfile.mkdtemp(prefix="i2vmon-pg-"))
        run_as = None
        if os.geteuid() == 0:
            run_as = "postgres"
            entry = pwd.getpwnam(run_as)
            os.chown(root, entry.pw_uid, entry.pw_gid)
        server = cls(bin_dir=bin_dir, root=root, port=free_port(), _run_as=run_as)
        data, sockets = root / "data", root / "sockets"
        subprocess.run(server._cmd("mkdir", "-p", str(sockets)), check=True)
        subprocess.run(
            server._cmd(str(bin_dir / "initdb"), "-D", str(data), "-U", server.user, "--auth=trust", "-E", "UTF8", "--no-sync"),
            check=True, capture_output=True,
        )
        options = (
            f"-p {server.port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off "
            "-c full_page_writes=off -c max_connections=100"
        )
        result = subprocess.run(
            server._cmd(str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(root / "server.log"), "-w", "-t", "60", "start"),
            capture_output=True, text=True,
        )
        if result.returncode != 0:
            log = (root / "server.log").read_text() if (root / "server.log").exists() else ""
            server.stop()
            raise RuntimeError(f"pg_ctl start failed: {result.stdout}{result.stderr}\n{log}")
        return server

    def create_database(self, name: str | None = None) -> str:
        """A fresh empty database; its URL."""
        import psycopg

        name = name or f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url, autocommit=True) as con:
            con.execute(f'CREATE DATABASE "{name}"')
        return self.database_url(name)

    def stop(self) -> None:
        if (self.root / "data" / "postmaster.pid").exists():
            subprocess.run(self._cmd(str(self.bin_dir / "pg_ctl"), "-D", str(self.root / "data"), "-m", "immediate", "-w", "stop"),
                           capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)
