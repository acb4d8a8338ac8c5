"""``warnd user`` and ``warnd token``: the console's accounts and API tokens."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import TYPE_CHECKING, Any

from warnd.jsonout import print_json

if TYPE_CHECKING:
    from warnd.store import Store


#: as warnd.web.auth.ROLES (not imported here: the command line loads this module)
ROLES = ("viewer", "operator")


def _password(args: argparse.Namespace) -> str | None:
    if args.password_stdin:
        pw = sys.stdin.readline().rstrip("\r\n")
        return pw or None
    if not sys.stdin.isatty():
        print("warnd: no terminal for a password prompt; use --password-stdin", file=sys.stderr)
        return None
    a = getpass.getpass("password: ")
    b = getpass.getpass("again: ")
    if a != b:
        print("warnd: the passwords differ", file=sys.stderr)
        return None
    return a


def cmd_user(args: argparse.Namespace, store: Store) -> int:
    from warnd.web import auth

    sub = getattr(args, "user_cmd", None) or "list"
    if sub == "add":
        pw = _password(args)
        if pw is None:
            return 2
        try:
            auth.add_user(store, args.name, args.role, pw, update=args.update)
        except auth.AuthError as e:
            print(f"warnd: user add: {e}", file=sys.stderr)
            return 2
        print(f"user {args.name} ({args.role}) {'updated' if args.update else 'added'}")
        return 0
    ending = {"disable": (auth.disable_user, "disabled", "active user"),
              "remove": (auth.remove_user, "removed", "user")}
    if sub in ending:
        act, done, who = ending[sub]
        if act(store, args.name):
            print(f"user {args.name} {done} (every session ends)")
            return 0
        print(f"warnd: no {who} {args.name!r}", file=sys.stderr)
        return 1
    if sub in ("sessions", "logout") and not store.q(
            "SELECT 1 FROM users WHERE name=? UNION SELECT 1 FROM web_sessions WHERE user=?",
            [args.name, args.name]):
        print(f"warnd: no user {args.name!r} (warnd user list)", file=sys.stderr)
        return 1
    if sub == "sessions":
        return _sessions(args, store, auth)
    if sub == "logout":
        n = auth.end_sessions(store, args.name, session_id=args.session,
                              why="warnd user logout")
        if args.session and not n:
            print(f"warnd: user {args.name!r} has no current session {args.session!r} "
                  f"(warnd user sessions {args.name})", file=sys.stderr)
            return 1
        print(f"{n} session{'' if n == 1 else 's'} of {args.name} ended")
        return 0
    rows = store.q("SELECT name, role, created_at, disabled_at FROM users ORDER BY name")
    if getattr(args, "json", False):
        print_json(rows)
        return 0
    for r in rows:
        print(f"{r['name']:20} {r['role']:9} {'disabled' if r['disabled_at'] else 'active'}")
    if not rows:
        print("no users (warnd user add NAME --role operator)")
    return 0


def _sessions(args: argparse.Namespace, store: Store, auth: Any) -> int:
    rows = auth.list_sessions(store, args.name, all_=args.all)
    if args.json:
        print_json(rows)
        return 0
    if not rows:
        print(f"no current sessions of {args.name}")
        return 0
    print(f"{'id':12}  {'started':19}  {'last used':19}  {'state':7}  address / browser")
    for r in rows:
        print(f"{r['id']:12}  {r['created_at'][:19].replace('T', ' '):19}  "
              f"{r['last_seen_at'][:19].replace('T', ' '):19}  {r['state']:7}  "
              f"{r['address'] or '-'} {(r['agent'] or '')[:60]}".rstrip())
    return 0


def cmd_token(args: argparse.Namespace, store: Store) -> int:
    from warnd.web import auth

    sub = getattr(args, "token_cmd", None) or "list"
    if sub == "create":
        try:
            tok = auth.create_token(store, args.name, args.role)
        except auth.AuthError as e:
            print(f"warnd: token create: {e}", file=sys.stderr)
            return 2
        print(tok)
        print(f"(token {args.name}, role {args.role}: shown once, stored hashed)",
              file=sys.stderr)
        return 0
    if sub == "revoke":
        if auth.revoke_token(store, args.name):
            print(f"token {args.name} revoked")
            return 0
        print(f"warnd: no active token {args.name!r}", file=sys.stderr)
        return 1
    rows = store.q("SELECT name, role, created_at, last_used_at, revoked_at FROM api_tokens "
                   "ORDER BY name")
    for r in rows:
        print(f"{r['name']:20} {r['role']:9} {'revoked' if r['revoked_at'] else 'active'}")
    if not rows:
        print("no tokens (warnd token create NAME --role viewer)")
    return 0


def add_parsers(sub: Any, common: argparse.ArgumentParser, web_func: Any, user_func: Any,
                token_func: Any) -> None:
    w = sub.add_parser("web", parents=[common], help="run the web console (foreground)")
    w.add_argument("--listen", metavar="HOST:PORT", help="default: [web] listen")
    w.set_defaults(func=web_func)

    u = sub.add_parser("user", parents=[common],
                       help="console accounts: user add|list|disable|remove|sessions|logout")
    us = u.add_subparsers(dest="user_cmd")
    a = us.add_parser("add", parents=[common], help="add a user (password from a prompt)")
    a.add_argument("name")
    a.add_argument("--role", choices=ROLES, required=True)
    a.add_argument("--password-stdin", action="store_true",
                   help="read the password from the first line of standard input")
    a.add_argument("--update", action="store_true", help="change an existing user")
    ls = us.add_parser("list", parents=[common], help="list users")
    ls.add_argument("--json", action="store_true")
    d = us.add_parser("disable", parents=[common], help="disable a user; their sessions end")
    d.add_argument("name")
    rm = us.add_parser("remove", parents=[common], help="remove a user; their sessions end")
    rm.add_argument("name")
    ss = us.add_parser("sessions", parents=[common], help="a user's console sessions")
    ss.add_argument("name")
    ss.add_argument("--all", action="store_true", help="ended and expired ones too")
    ss.add_argument("--json", action="store_true")
    lo = us.add_parser("logout", parents=[common],
                       help="end a user's sessions (all, or one with --session)")
    lo.add_argument("name")
    lo.add_argument("--session", metavar="ID", help="the session's id (warnd user sessions)")
    u.set_defaults(func=user_func)

    t = sub.add_parser("token", parents=[common], help="API tokens: token create|list|revoke")
    ts = t.add_subparsers(dest="token_cmd")
    c = ts.add_parser("create", parents=[common], help="make a token (printed once)")
    c.add_argument("name")
    c.add_argument("--role", choices=ROLES, required=True)
    ts.add_parser("list", parents=[common], help="list tokens")
    r = ts.add_parser("revoke", parents=[common], help="revoke a token")
    r.add_argument("name")
    t.set_defaults(func=token_func)
