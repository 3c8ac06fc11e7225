#!/usr/bin/env python3
"""A stand-in for OneCLI's `onecli` CLI (secrets list|create|delete), answering like the real one (JSON out,
unknown flags refused as its argument parser does) and recording each call.

FAKE_ONECLI_STATE: the JSON file its secrets live in (values included: it is the vault here).
FAKE_ONECLI_LOG: one JSON line per call, {"argv": [...], "stdin": "..."}.
FAKE_ONECLI_FAIL: a subcommand (list, create, delete) that fails; `create` echoes the value it got in its
error, as a careless server might, so the caller's redaction is tested.
"""

import json
import os
import sys
import time
import uuid

FLAGS = {
    "list": {"--fields", "--quiet", "--max", "--project", "-p"},
    "create": {"--name", "--type", "--value", "--file", "--host-pattern", "--path-pattern", "--header-name",
               "--value-format", "--param-name", "--param-format", "--json", "--project", "-p"},
    "delete": {"--id"},
}


def fail(message: str, code: int = 1) -> None:
    sys.stderr.write(json.dumps({"error": message}) + "\n")
    sys.exit(code)


def main() -> None:
    args = sys.argv[1:]
    stdin = "" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.read()
    with open(os.environ["FAKE_ONECLI_LOG"], "a") as log:
        log.write(json.dumps({"argv": args, "stdin": stdin}) + "\n")
    if args[:1] != ["secrets"] or len(args) < 2 or args[1] not in FLAGS:
        fail(f"unexpected command: {' '.join(args[:2])}")
    command, rest = args[1], args[2:]
    options: dict[str, str] = {}
    while rest:
        flag = rest.pop(0)
        if flag not in FLAGS[command]:
            fail(f"unknown flag {flag}")
        if not rest:
            fail(f"{flag}: expected a value")
        options[flag] = rest.pop(0)
    if os.environ.get("FAKE_ONECLI_FAIL") == command:
        detail = f" (value {stdin.strip() or options.get('--value', '')!s} rejected)" if command == "create" else ""
        fail(f"listing secrets: connection refused{detail}" if command == "list" else f"server error{detail}")
    path = os.environ["FAKE_ONECLI_STATE"]
    secrets = json.load(open(path)) if os.path.exists(path) else []

    if command == "list":
        shown = secrets[: int(options.get("--max", "20"))]
        fields = [f for f in options.get("--fields", "").split(",") if f]
        public = [{k: v for k, v in s.items() if k != "value" and (not fields or k in fields)} for s in shown]
        print(json.dumps(public if fields else {"hint": "Manage your secrets", "data": public}, indent=2))
    elif command == "create":
        if "--value" in options and "--file" in options:
            fail("--value and --file are mutually exclusive")
        value = options.get("--value", "")
        if "--file" in options:
            value = (stdin if options["--file"] == "/dev/stdin" else open(options["--file"]).read()).strip()
        if not value:
            fail("either --value or --file is required")
        secret = {"id": uuid.uuid4().hex[:12], "name": options["--name"], "type": options["--type"],
                  "hostPattern": options["--host-pattern"], "pathPattern": options.get("--path-pattern"),
                  "injectionConfig": {"headerName": options["--header-name"],
                                      "valueFormat": options.get("--value-format", "{value}")}
                  if "--header-name" in options else None,
                  "createdAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                  "preview": value[:3] + "…", "value": value}
        secrets.append(secret)
        print(json.dumps({k: v for k, v in secret.items() if k != "value"}))
    else:
        if not any(s["id"] == options.get("--id") for s in secrets):
            fail("secret not found", 4)
        secrets = [s for s in secrets if s["id"] != options["--id"]]
        print(json.dumps({"status": "deleted", "id": options["--id"]}))
    with open(path, "w") as f:
        json.dump(secrets, f)


if __name__ == "__main__":
    main()
