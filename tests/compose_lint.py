"""Checks docker-compose.yml against the deployment rules (PyYAML; tests/compose_lint.sh runs it).

Fails on:
- a literal secret in a service's environment: a variable named *PASSWORD,
  *SECRET*, *TOKEN or *_KEY whose value is not `${VAR}` (a non-empty default
  is a literal too), or a database URL with a literal password;
- a trusted-proxy entry (NTS_TRUSTED_PROXIES, defaults included) wider than
  one address (/32, /128);
- a published admin port (PostgreSQL, PgBouncer, HAProxy's statistics) not
  bound to 127.0.0.1;
- more than one published public port (not bound to 127.0.0.1) per profile.

Usage: compose_lint.py [FILE]   (default: docker-compose.yml at the repo root)
"""

import ipaddress
import re
import sys
from pathlib import Path

import yaml

SECRET_NAME = re.compile(r"(PASSWORD|SECRET|TOKEN|_KEY)(_|$)")
REFERENCE = re.compile(r"^\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<default>[^}]*))?\}$")
URL_PASSWORD = re.compile(r"^[a-z][a-z0-9+.-]*://[^:/@]+:(?P<password>[^@]*)@")
ADMIN_CONTAINER_PORTS = {5432, 6432, 9081}
LOCAL = {"127.0.0.1", "::1", "[::1]", "localhost"}


def environment(service):
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return env


def literal_default(value):
    """`None` when VALUE is a reference without a literal fallback, else the literal part."""
    m = REFERENCE.match(value)
    if not m:
        return value
    if m.group("op") in ("-", ":-") and m.group("default"):
        return m.group("default")
    return None


def secret_problems(name, key, value):
    if value is None:
        return []
    value = str(value)
    if SECRET_NAME.search(key) and value != "":
        literal = literal_default(value)
        if literal is not None:
            return [f"{name}: {key} holds a literal secret ({literal!r}); take it from .env as ${{{key}}}"]
    m = URL_PASSWORD.match(value)
    if m and not REFERENCE.match(m.group("password")):
        return [f"{name}: {key} has a literal password in its URL; use ${{POSTGRES_PASSWORD}}"]
    return []


def proxy_problems(name, value):
    problems = []
    for raw in re.split(r"[,\s]+", literal_default(str(value)) or ""):
        if not raw or raw.startswith("$"):
            continue
        try:
            net = ipaddress.ip_network(raw, strict=False)
        except ValueError:
            problems.append(f"{name}: NTS_TRUSTED_PROXIES entry {raw!r} is not an address")
            continue
        if net.num_addresses > 1:
            problems.append(
                f"{name}: NTS_TRUSTED_PROXIES trusts {raw}, more than one address: give the proxy a fixed "
                "address and trust that alone (/32 or /128)"
            )
    return problems


def published(port):
    """(host address or None, container port) of one `ports` entry."""
    if isinstance(port, dict):
        return port.get("host_ip"), int(str(port["target"]).split("/")[0])
    parts = str(port).split("/")[0]
    if parts.startswith("["):  # [::1]:9000:9000
        host, rest = parts[1:].split("]:", 1)
        return host, int(rest.split(":")[-1])
    fields = parts.split(":")
    host = fields[0] if len(fields) == 3 else None
    return host, int(fields[-1])


def lint(compose):
    problems = []
    services = compose.get("services") or {}
    profiles = {"(no profile)"} | {p for s in services.values() for p in (s.get("profiles") or [])}
    public = {p: [] for p in profiles}
    for name, service in services.items():
        for key, value in environment(service).items():
            problems += secret_problems(name, key, value)
            if key == "NTS_TRUSTED_PROXIES" and value is not None:
                problems += proxy_problems(name, value)
        own = service.get("profiles") or []
        for port in service.get("ports") or []:
            host, target = published(port)
            local = host in LOCAL
            if target in ADMIN_CONTAINER_PORTS and not local:
                problems.append(f"{name}: admin port {port!r} is published beyond 127.0.0.1")
            if not local:
                for profile in profiles:
                    if not own or profile in own:
                        public[profile].append(f"{name} {port}")
    for profile, ports in sorted(public.items()):
        if len(ports) > 1:
            problems.append(f"profile {profile}: {len(ports)} public ports ({', '.join(ports)}); one at most")
    return problems


def main():
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent / "docker-compose.yml"
    problems = lint(yaml.safe_load(path.read_text()))
    for p in problems:
        print(f"compose_lint: {path.name}: {p}")
    if problems:
        sys.exit(1)
    print(f"compose_lint: {path.name}: ok")


if __name__ == "__main__":
    main()
