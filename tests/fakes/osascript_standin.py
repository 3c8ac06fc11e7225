"""Stand-in for macOS's osascript running Messages' send scripts (see tests/fakes/messages_db.py).

Usage (through the wrapper the fake writes): osascript_standin.py CONFIG [-e statement]... [argument]...
It reads the command line as osascript does (options until the first other argument, which starts the
script's argv), understands the two statements Messages is sent ("send (item N of argv) to chat id (item M
of argv)", the same with a `POSIX file`), and answers like Messages: a row in chat.db for what was sent, an
AppleScript error (-1728) for a chat that does not exist, (-609) while Messages is "down".
"""

from __future__ import annotations

import base64
import json
import re
import sys
from contextlib import closing
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.fakes.messages_db import connect, insert_message  # noqa: E402


def main(argv: list[str]) -> int:
    config = json.loads(Path(argv[0]).read_text())
    args, statements = argv[1:], []
    while args and args[0].startswith("-") and args[0] != "-":
        option = args.pop(0)
        if option == "--":
            break
        if option in ("-e", "-l", "-s") and args:
            value = args.pop(0)
            if option == "-e":
                statements.append(value)
        elif option != "-i":
            print(f"osascript: illegal option -- {option.lstrip('-')[:1]}", file=sys.stderr)
            return 1
    script = "\n".join(statements)
    record = {"argv": argv[1:], "script": script, "args": args}
    if not script.startswith("on run argv") or not script.rstrip().endswith("end run"):
        print("0:0: syntax error: the stand-in knows only `on run argv` scripts (-2741)", file=sys.stderr)
        return 1
    target = re.search(r"chat id \(item (\d+) of argv\)", script)
    text = re.search(r"send \(item (\d+) of argv\) to chat id", script)
    file = re.search(r"POSIX file \(item (\d+) of argv\)", script)
    if target is None or (text is None) == (file is None):
        print("execution error: the stand-in does not understand this script (-2753)", file=sys.stderr)
        return 1
    item = int((text or file).group(1)) - 1  # type: ignore[union-attr]
    chat = args[int(target.group(1)) - 1] if int(target.group(1)) <= len(args) else ""
    if Path(config["down"]).exists():
        print("execution error: Messages got an error: Connection is invalid. (-609)", file=sys.stderr)
        return 1
    with closing(connect(Path(config["db"]))) as conn:
        if conn.execute("SELECT 1 FROM chat WHERE guid = ?", (chat,)).fetchone() is None:
            print(f'execution error: Messages got an error: Can’t get chat id "{chat}". (-1728)', file=sys.stderr)
            return 1
        if text is not None:
            record["text"] = args[item]
            record["guid"] = insert_message(conn, Path(config["attachments"]), chat, handle=None, text=args[item],
                                            from_me=True)
        else:
            path = Path(args[item])
            data = path.read_bytes()
            record |= {"file_name": path.name, "file_data": base64.b64encode(data).decode()}
            record["guid"] = insert_message(conn, Path(config["attachments"]), chat, handle=None, text="",
                                            from_me=True, file=(path.name, data, "application/octet-stream"))
    record["chat"] = chat
    with open(config["log"], "a") as log:
        log.write(json.dumps(record) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
