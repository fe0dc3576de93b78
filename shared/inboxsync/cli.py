"""The `inboxsync` command: run and drive the local stack.

Exit codes: 0 success, 1 no local stack running / request refused, 2 bad
arguments or configuration.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from inboxsync.errors import ConfigError, InboxsyncError

if TYPE_CHECKING:
    from inboxsync.adapters.gmail import GmailApiConnector
    from inboxsync.local.control import StackClient
    from inboxsync.replay import DeadLetterReplayer
    from inboxsync.sync.firestore_store import SyncFirestore

__all__ = ["main"]

NO_STACK = (
    "no local stack is running (start one with `make run`, or set"
    " INBOXSYNC_STACK_DIR to the folder of the one you started)"
)


class CliError(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def _client() -> StackClient:
    from inboxsync.local.control import StackClient
    from inboxsync.local.stack import read_status

    status = read_status()
    if status is None:
        raise CliError(NO_STACK, 1)
    return StackClient(status)


def _cmd_status(args: argparse.Namespace) -> int:
    from inboxsync.local.stack import read_status

    status = read_status()
    if status is None:
        raise CliError(NO_STACK, 1)
    if args.json:
        print(status.to_json())
    else:
        for key in (
            "push_url",
            "sync_url",
            "renew_url",
            "gmail_api_url",
            "rules_file",
            "log_dir",
        ):
            print(f"{key:22} {getattr(status, key)}")
        for key in (
            "firestore_emulator_host",
            "pubsub_emulator_host",
            "tasks_emulator_host",
        ):
            print(f"{key:22} {getattr(status, key)}")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from inboxsync.local.demo import run_stack

    rules = Path(args.rules) if args.rules else None
    return run_stack(base_port=args.base_port, rules_file=rules, demo=not args.no_demo)


def _cmd_push(args: argparse.Namespace) -> int:
    try:
        json.loads(args.data)
    except ValueError as exc:
        raise CliError(f"--data is not JSON: {exc}", 2) from None
    client = _client()
    try:
        response = client.push(args.data, args.message_id)
    finally:
        client.close()
    print(response.status_code)
    return 0 if response.ok else 1


def _cmd_add_mailbox(args: argparse.Namespace) -> int:
    client = _client()
    try:
        result = client.add_mailbox(args.address)
    finally:
        client.close()
    print(json.dumps(result))
    return 0


def _cmd_deliver(args: argparse.Namespace) -> int:
    if args.count < 1 or args.count > 1000:
        raise CliError("--count must be between 1 and 1000", 2)
    client = _client()
    try:
        message_ids = client.deliver(
            args.address,
            subject=args.subject,
            sender=args.sender,
            labels=args.label or None,
            attachments=args.attachment or None,
            count=args.count,
        )
    finally:
        client.close()
    print("\n".join(message_ids))
    return 0


def _cmd_publish(args: argparse.Namespace) -> int:
    client = _client()
    try:
        print(client.publish(args.address, args.history_id))
    finally:
        client.close()
    return 0


def _environment(args: argparse.Namespace) -> dict[str, str]:
    """The running local stack's settings, or (--from-env) the process environment.

    With --from-env the variables are the deployed functions' own (receive_push's
    for the queue, run_sync's for Gmail), plus credentials for the project.
    """
    import os

    from inboxsync.local.stack import LOCATION, QUEUE, read_status

    if args.from_env:
        return dict(os.environ)
    status = read_status()
    if status is None:
        raise CliError(NO_STACK + "; or pass --from-env", 1)
    return {
        "INBOXSYNC_PROJECT": status.project,
        "INBOXSYNC_LOCAL_MODE": "true",
        "FIRESTORE_EMULATOR_HOST": status.firestore_emulator_host,
        "CLOUD_TASKS_EMULATOR_HOST": status.tasks_emulator_host,
        "INBOXSYNC_TASKS_LOCATION": LOCATION,
        "INBOXSYNC_TASKS_QUEUE": QUEUE,
        "INBOXSYNC_SYNC_URL": status.sync_url,
        "INBOXSYNC_GMAIL_API_URL": status.gmail_api_url,
        "INBOXSYNC_GMAIL_TOPIC": status.topic,
        "INBOXSYNC_RULES_FILE": status.rules_file,
    }


def _replayer(args: argparse.Namespace) -> DeadLetterReplayer:
    from inboxsync.config import PushSettings
    from inboxsync.replay import DeadLetterReplayer
    from inboxsync.wiring import push_parts

    parts = push_parts(PushSettings.from_env(_environment(args)))
    return DeadLetterReplayer(parts.store, receiver=parts.receiver, queue=parts.queue)


def _mailbox_tools(
    args: argparse.Namespace,
) -> tuple[SyncFirestore, GmailApiConnector, str]:
    """Firestore store, Gmail adapter and watch topic for the mailbox commands."""
    from inboxsync.adapters.firestore import make_client
    from inboxsync.config import EnvReader
    from inboxsync.sync.firestore_store import SyncFirestore
    from inboxsync.sync.settings import SyncSettings
    from inboxsync.wiring import build_gmail_connector

    environ = _environment(args)
    settings = SyncSettings.from_env(environ)
    topic = args.topic or EnvReader(environ).optional("INBOXSYNC_GMAIL_TOPIC")
    if not topic or not topic.startswith("projects/"):
        raise CliError(
            "the Pub/Sub topic for users.watch is needed, as projects/P/topics/T:"
            " pass --topic or set INBOXSYNC_GMAIL_TOPIC (terraform output gmail_topic)",
            2,
        )
    connector = build_gmail_connector(settings.gmail)
    return SyncFirestore(make_client(settings.common)), connector, topic


def _cmd_mailboxes_add(args: argparse.Namespace) -> int:
    from inboxsync.onboarding import add_mailbox

    store, connector, topic = _mailbox_tools(args)
    watched = add_mailbox(
        store,
        connector,
        args.address,
        topic=topic,
        auth=args.auth,
        oauth_secret=args.oauth_secret,
        label_ids=args.label or ("INBOX",),
    )
    print(
        json.dumps(
            {
                "mailbox_id": watched.mailbox_id,
                "history_id": watched.history_id,
                "watch_expires_at": watched.watch_expires_at.isoformat(),
            }
        )
    )
    return 0


def _cmd_mailboxes_renew(args: argparse.Namespace) -> int:
    from inboxsync.config import PushSettings
    from inboxsync.onboarding import renew_watches
    from inboxsync.wiring import push_parts

    store, connector, topic = _mailbox_tools(args)
    queue = push_parts(PushSettings.from_env(_environment(args))).queue
    report = renew_watches(
        store, connector, queue, topic=topic, label_ids=args.label or ("INBOX",)
    )
    print(
        json.dumps(
            {
                "renewed": len(report.renewed),
                "skipped": len(report.skipped),
                "failed": report.failed,
                "retry_later": report.retry_later,
            }
        )
    )
    return 1 if report.failed or report.retry_later else 0


def _cmd_mailboxes_list(args: argparse.Namespace) -> int:
    store, _, _ = _mailbox_tools(args)
    rows = [
        {
            "mailbox_id": m.mailbox_id,
            "address": m.address,
            "status": m.status,
            "auth": m.auth,
            "checkpoint": m.checkpoint,
        }
        for m in store.list_mailboxes()
    ]
    print(json.dumps(rows, indent=2))
    return 0


def _cmd_dead_letters_list(args: argparse.Namespace) -> int:
    letters = _replayer(args).list(args.kind)
    if args.json:
        print(json.dumps([letter.summary() for letter in letters], indent=2))
    else:
        for letter in letters:
            mark = "replayed" if letter.replayed else "pending"
            print(f"{letter.letter_id}  {letter.kind:16} {mark:8}  {letter.error}")
    return 0


def _cmd_dead_letters_replay(args: argparse.Namespace) -> int:
    from inboxsync.replay import ReplayRefused

    replayer = _replayer(args)
    failed = 0
    for letter_id in args.ids:
        try:
            print(f"{letter_id}: {replayer.replay(letter_id)}")
        except ReplayRefused as exc:
            print(f"inboxsync: {letter_id}: {exc}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="inboxsync", description=__doc__.splitlines()[0]
    )
    groups = parser.add_subparsers(dest="group", required=True)

    local = groups.add_parser("local", help="the local stack").add_subparsers(
        dest="command", required=True
    )
    run = local.add_parser("run", help="start the stack and run the demo until Ctrl-C")
    run.add_argument(
        "--base-port",
        type=int,
        default=None,
        help="first of seven consecutive ports (0: any free ports)",
    )
    run.add_argument("--rules", help="rules file (default: the bundled local rules)")
    run.add_argument("--no-demo", action="store_true", help="start the stack only")
    run.set_defaults(func=_cmd_run)
    status = local.add_parser(
        "status", help="where each part of the running stack listens"
    )
    status.add_argument("--json", action="store_true", help="one JSON object")
    status.set_defaults(func=_cmd_status)
    push = local.add_parser("push", help="POST a push envelope to receive_push")
    push.add_argument(
        "--data",
        required=True,
        help='notification JSON, e.g. \'{"emailAddress":"a@b.c","historyId":5}\'',
    )
    push.add_argument("--message-id", help="Pub/Sub message id (same id = duplicate)")
    push.set_defaults(func=_cmd_push)

    sandbox = groups.add_parser("sandbox", help="the Gmail sandbox").add_subparsers(
        dest="command", required=True
    )
    add = sandbox.add_parser("add-mailbox", help="create, register and watch a mailbox")
    add.add_argument("address")
    add.set_defaults(func=_cmd_add_mailbox)
    deliver = sandbox.add_parser(
        "deliver", help="deliver mail; prints the new message ids"
    )
    deliver.add_argument("address")
    deliver.add_argument("--subject")
    deliver.add_argument("--sender")
    deliver.add_argument("--label", action="append", help="label name (repeatable)")
    deliver.add_argument("--attachment", action="append", help="file name (repeatable)")
    deliver.add_argument("--count", type=int, default=1)
    deliver.set_defaults(func=_cmd_deliver)
    publish = sandbox.add_parser(
        "publish", help="publish a notification without new mail"
    )
    publish.add_argument("address")
    publish.add_argument("--history-id", type=int)
    publish.set_defaults(func=_cmd_publish)
    letters = groups.add_parser("dead-letters", help="what the pipeline gave up on")
    letter_commands = letters.add_subparsers(dest="command", required=True)
    listing = letter_commands.add_parser("list", help="list dead letters")
    listing.add_argument("--kind", help="push, sync_task, unknown_mailbox or action")
    listing.add_argument("--json", action="store_true", help="a JSON array")
    listing.set_defaults(func=_cmd_dead_letters_list)
    replay = letter_commands.add_parser("replay", help="send dead letters back in")
    replay.add_argument("ids", nargs="+", metavar="ID")
    replay.set_defaults(func=_cmd_dead_letters_replay)
    mailboxes = groups.add_parser("mailboxes", help="register and watch mailboxes")
    mailbox_commands = mailboxes.add_subparsers(dest="command", required=True)
    add_box = mailbox_commands.add_parser(
        "add", help="register a mailbox at its current history id and watch it"
    )
    add_box.add_argument("address")
    add_box.add_argument(
        "--auth",
        choices=("delegated", "oauth", "none"),
        default="delegated",
        help="delegated (Workspace), oauth (refresh token secret), none (sandbox)",
    )
    add_box.add_argument(
        "--oauth-secret", help="with --auth oauth: projects/P/secrets/NAME"
    )
    add_box.set_defaults(func=_cmd_mailboxes_add)
    renew = mailbox_commands.add_parser(
        "renew",
        help="renew every active mailbox's watch and queue a catch-up sync (daily)",
    )
    renew.set_defaults(func=_cmd_mailboxes_renew)
    list_boxes = mailbox_commands.add_parser("list", help="registered mailboxes")
    list_boxes.set_defaults(func=_cmd_mailboxes_list)
    for sub in (add_box, renew, list_boxes):
        sub.add_argument("--topic", help="watch topic (default INBOXSYNC_GMAIL_TOPIC)")
        sub.add_argument(
            "--label", action="append", help="watch label id (default INBOX)"
        )
    for sub in (listing, replay, add_box, renew, list_boxes):
        sub.add_argument(
            "--from-env",
            action="store_true",
            help="use the functions' environment variables instead of the local stack",
        )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except CliError as exc:
        print(f"inboxsync: {exc}", file=sys.stderr)
        return exc.code
    except ConfigError as exc:
        print(f"inboxsync: {exc}", file=sys.stderr)
        return 2
    except InboxsyncError as exc:
        print(f"inboxsync: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # the one place that turns any failure into a line
        from inboxsync.local.sandbox import SandboxAdminError

        if isinstance(exc, SandboxAdminError):
            print(f"inboxsync: sandbox refused: {exc}", file=sys.stderr)
            return 1
        import requests

        if isinstance(exc, requests.RequestException):
            print(f"inboxsync: the local stack did not answer: {exc}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    raise SystemExit(main())
