"""A fake Linear: the GraphQL API the Linear channel calls, its file storage, and signed webhooks a person's
actions send.

The API side (aiohttp on 127.0.0.1, `POST /graphql`) executes each request with graphql-core against a small
excerpt of Linear's schema (the types and fields the channel uses, named as Linear names them), so a query
with a wrong field or argument fails here as it would at Linear. Errors come in Linear's shape
(`extensions.code`: AUTHENTICATION_ERROR, RATELIMITED, INVALID_INPUT …). `fileUpload` hands out a signed
upload URL on this server and an asset URL under `/uploads/`, which is readable with the API key only.
The person side builds Comment and Issue webhook payloads and posts them signed (`Linear-Signature`, hex
HMAC-SHA256 of the body) with a `webhookTimestamp`.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from graphql import GraphQLError, build_schema, graphql

from tests.channels.harness import PlatformMessage

SCHEMA = build_schema("""
scalar DateTime
scalar DateTimeOrDuration
scalar JSON

type User { id: ID! name: String! displayName: String! email: String! active: Boolean! isMe: Boolean! }
type Team { id: ID! name: String! key: String! }
type ActorBot { id: ID type: String! name: String }
type Issue { id: ID! identifier: String! title: String! description: String url: String! team: Team!
             createdAt: DateTime! }
type Comment { id: ID! body: String! createdAt: DateTime! url: String! user: User issue: Issue issueId: String
               parent: Comment parentId: String botActor: ActorBot }
type PageInfo { hasNextPage: Boolean! hasPreviousPage: Boolean! startCursor: String endCursor: String }
type CommentConnection { nodes: [Comment!]! pageInfo: PageInfo! }
type CommentPayload { lastSyncId: Float! comment: Comment! success: Boolean! }
type IssuePayload { lastSyncId: Float! issue: Issue success: Boolean! }
type Reaction { id: ID! emoji: String! }
type ReactionPayload { lastSyncId: Float! reaction: Reaction! success: Boolean! }
type UploadFileHeader { key: String! value: String! }
type UploadFile { filename: String! contentType: String! size: Int! uploadUrl: String! assetUrl: String!
                  headers: [UploadFileHeader!]! }
type UploadPayload { lastSyncId: Float! uploadFile: UploadFile success: Boolean! }

enum PaginationOrderBy { createdAt updatedAt }
input IDComparator { eq: ID neq: ID in: [ID!] nin: [ID!] }
input IssueIDComparator { eq: ID neq: ID in: [ID!] nin: [ID!] }
input DateComparator { eq: DateTimeOrDuration gt: DateTimeOrDuration gte: DateTimeOrDuration
                       lt: DateTimeOrDuration lte: DateTimeOrDuration }
input TeamFilter { id: IDComparator }
input NullableIssueFilter { id: IssueIDComparator team: TeamFilter }
input CommentFilter { createdAt: DateComparator issue: NullableIssueFilter and: [CommentFilter!] }
input CommentCreateInput { id: String body: String issueId: String parentId: String createAsUser: String }
input CommentUpdateInput { body: String }
input IssueCreateInput { title: String description: String teamId: String! }
input IssueUpdateInput { description: String title: String }
input ReactionCreateInput { id: String emoji: String! commentId: String issueId: String }

type Query {
  viewer: User!
  issue(id: String!): Issue!
  comments(filter: CommentFilter, before: String, after: String, first: Int, last: Int, includeArchived: Boolean,
           orderBy: PaginationOrderBy): CommentConnection!
}
type Mutation {
  commentCreate(input: CommentCreateInput!): CommentPayload!
  commentUpdate(id: String!, input: CommentUpdateInput!, skipEditedAt: Boolean): CommentPayload!
  issueCreate(input: IssueCreateInput!): IssuePayload!
  issueUpdate(id: String!, input: IssueUpdateInput!): IssuePayload!
  reactionCreate(input: ReactionCreateInput!): ReactionPayload!
  fileUpload(contentType: String!, filename: String!, size: Int!, makePublic: Boolean, metaData: JSON): UploadPayload!
}
""")
ORG = "acme"


def sign(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


_last_ms = 0


def now_iso() -> str:
    """Linear's createdAt (milliseconds); each call later than the one before, as two writes are at Linear."""
    global _last_ms
    _last_ms = max(int(time.time() * 1000), _last_ms + 1)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(_last_ms // 1000)) + f".{_last_ms % 1000:03d}Z"


class LinearError(GraphQLError):
    def __init__(self, message: str, code: str = "INVALID_INPUT") -> None:
        super().__init__(message, extensions={"code": code, "type": code.lower().replace("_", " "),
                                              "userPresentableMessage": message})


@dataclass
class Comment:
    id: str
    issue: str
    body: str
    user: str
    parent: str | None = None
    bot: bool = False
    created_at: str = field(default_factory=now_iso)
    reactions: list[str] = field(default_factory=list)


class LinearFake:
    """GraphQL API + storage on 127.0.0.1 and the person's side; `api_url` is what LINEAR_API_URL should be."""

    def __init__(self, api_key: str, bot_name: str = "andy") -> None:
        self.api_key = api_key
        self.bot = {"id": str(uuid.uuid4()), "name": "Andy Bot", "displayName": bot_name,
                    "email": f"{bot_name}@acme.test", "active": True, "isMe": True}
        self.users: dict[str, dict[str, Any]] = {}
        self.teams: dict[str, dict[str, str]] = {}
        self.issues: dict[str, dict[str, Any]] = {}
        self.all_comments: dict[str, Comment] = {}  # not `comments`: that is the query resolver
        self.assets: dict[str, tuple[str, bytes, str]] = {}  # asset path → (file name, data, content type)
        self._uploads: dict[str, tuple[str, str, str]] = {}  # upload token → (asset path, name, content type)
        self.sent: list[PlatformMessage] = []  # what the bot wrote (comments and issues), oldest first
        self.requests: list[tuple[str, str]] = []  # (kind, detail): GraphQL root fields and HTTP paths served
        self.down = False
        self.rate_limited = False
        self._numbers = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return self.base_url + "/graphql"

    @property
    def uploads_url(self) -> str:
        return self.base_url + "/uploads"

    # -- server lifecycle ------------------------------------------------------

    async def start(self) -> None:
        app = web.Application(client_max_size=60 * 2**20)
        app.router.add_post("/graphql", self._graphql)
        app.router.add_put("/storage/{token}", self._store)
        app.router.add_get("/uploads/{path:.+}", self._asset)
        app.router.add_get("/elsewhere/{path:.+}", self._elsewhere)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)  # the same port again after a restart
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    # -- HTTP ------------------------------------------------------------------

    async def _graphql(self, request: web.Request) -> web.Response:
        if self.down:
            return web.Response(status=503, text="upstream connect error")
        if request.headers.get("Authorization") != self.api_key:
            return _errors(400, "Authentication required, not authenticated", "AUTHENTICATION_ERROR")
        if self.rate_limited:
            return _errors(400, "Rate limit exceeded", "RATELIMITED")
        body = await request.json()
        result = await graphql(SCHEMA, body.get("query", ""), root_value=self,
                               variable_values=body.get("variables"), operation_name=body.get("operationName"))
        if result.errors:
            errors = [{"message": e.message, "extensions": e.extensions or {"code": "GRAPHQL_VALIDATION_FAILED"}}
                      for e in result.errors]
            return web.json_response({"errors": errors, "data": result.data}, status=400 if result.data is None else 200)
        return web.json_response({"data": result.data})

    async def _store(self, request: web.Request) -> web.Response:
        self.requests.append(("PUT", request.path))
        upload = self._uploads.pop(request.match_info["token"], None)
        if upload is None or request.headers.get("x-goog-meta-linear") != "yes":
            return web.Response(status=403, text="SignatureDoesNotMatch")
        path, name, kind = upload
        if request.headers.get("Content-Type") != kind:
            return web.Response(status=400, text="content type differs from the signed one")
        self.assets[path] = (name, await request.read(), kind)
        return web.Response(status=200)

    async def _asset(self, request: web.Request) -> web.Response:
        self.requests.append(("GET", request.path))
        if request.headers.get("Authorization") != self.api_key:
            return web.Response(status=401, text="Unauthorized")
        found = self.assets.get(request.match_info["path"])
        if found is None:
            return web.Response(status=404)
        return web.Response(body=found[1], content_type=found[2])

    async def _elsewhere(self, request: web.Request) -> web.Response:
        self.requests.append(("GET", request.path))
        leaked = request.headers.get("Authorization") == self.api_key
        return web.Response(text="the key was sent here" if leaked else "x", status=200)

    # -- resolvers (graphql-core calls these with the root value) ----------------------------

    def viewer(self, info: Any) -> dict[str, Any]:
        self.requests.append(("query", "viewer"))
        return self.bot

    def comments(self, info: Any, filter: dict[str, Any] | None = None, first: int | None = None,
                 after: str | None = None, **_: Any) -> dict[str, Any]:
        self.requests.append(("query", "comments"))
        found = [c for c in self.all_comments.values() if _matches(c, self.issues, filter or {})]
        found.sort(key=lambda c: (c.created_at, c.id), reverse=True)  # Linear: newest first
        start = int(after) if after else 0
        page = found[start:start + (first or 50)]
        end = start + len(page)
        return {"nodes": [self._comment_json(c) for c in page],
                "pageInfo": {"hasNextPage": end < len(found), "hasPreviousPage": start > 0,
                             "startCursor": str(start), "endCursor": str(end)}}

    def commentCreate(self, info: Any, input: dict[str, Any]) -> dict[str, Any]:
        self.requests.append(("mutation", "commentCreate"))
        issue, body, parent = input.get("issueId"), input.get("body") or "", input.get("parentId")
        if issue not in self.issues:
            raise LinearError("Entity not found: Issue", "INVALID_INPUT")
        if not body.strip():
            raise LinearError("Argument Validation Error: body should not be empty")
        if parent is not None and (parent not in self.all_comments or self.all_comments[parent].parent is not None
                                   or self.all_comments[parent].issue != issue):
            raise LinearError("Parent comment must be a top-level comment of the same issue")
        comment = self.add_comment(issue, body, self.bot["id"], parent)
        name, data = self._linked_asset(body)
        self.sent.append(PlatformMessage(comment.id, self.issues[issue]["teamId"], body, issue, file_name=name,
                                         file_data=data, raw=input))
        return {"success": True, "lastSyncId": 1.0, "comment": self._comment_json(comment)}

    def commentUpdate(self, info: Any, id: str, input: dict[str, Any], **_: Any) -> dict[str, Any]:
        self.requests.append(("mutation", "commentUpdate"))
        comment = self.all_comments.get(id)
        if comment is None:
            raise LinearError("Entity not found: Comment")
        if comment.user != self.bot["id"]:
            raise LinearError("You can only edit your own comments", "FORBIDDEN")
        comment.body = input.get("body", comment.body)
        self._record_edit(id, comment.body)
        return {"success": True, "lastSyncId": 2.0, "comment": self._comment_json(comment)}

    def issueCreate(self, info: Any, input: dict[str, Any]) -> dict[str, Any]:
        self.requests.append(("mutation", "issueCreate"))
        if input["teamId"] not in self.teams:
            raise LinearError("Entity not found: Team")
        issue = self.add_issue(input["teamId"], input.get("title") or "Untitled", input.get("description") or "")
        name, data = self._linked_asset(issue["description"])
        self.sent.append(PlatformMessage(f"issue-{issue['id']}", issue["teamId"], issue["description"], issue["id"],
                                         file_name=name, file_data=data, raw=input))
        return {"success": True, "lastSyncId": 3.0, "issue": self._issue_json(issue)}

    def issueUpdate(self, info: Any, id: str, input: dict[str, Any]) -> dict[str, Any]:
        self.requests.append(("mutation", "issueUpdate"))
        issue = self.issues.get(id)
        if issue is None:
            raise LinearError("Entity not found: Issue")
        issue["description"] = input.get("description", issue["description"])
        self._record_edit(f"issue-{id}", issue["description"])
        return {"success": True, "lastSyncId": 4.0, "issue": self._issue_json(issue)}

    def reactionCreate(self, info: Any, input: dict[str, Any]) -> dict[str, Any]:
        self.requests.append(("mutation", "reactionCreate"))
        target = self.all_comments.get(input.get("commentId") or "")
        if target is None and input.get("issueId") not in self.issues:
            raise LinearError("Entity not found")
        reactions = target.reactions if target else self.issues[input["issueId"]].setdefault("reactions", [])
        reactions.append(input["emoji"])
        return {"success": True, "lastSyncId": 5.0, "reaction": {"id": str(uuid.uuid4()), "emoji": input["emoji"]}}

    def fileUpload(self, info: Any, contentType: str, filename: str, size: int, **_: Any) -> dict[str, Any]:
        self.requests.append(("mutation", "fileUpload"))
        if size > 50 * 2**20:
            raise LinearError("File too large")
        token, path = uuid.uuid4().hex, f"{ORG}/{uuid.uuid4()}/{uuid.uuid4()}"
        self._uploads[token] = (path, filename, contentType)
        return {"success": True, "lastSyncId": 6.0, "uploadFile": {
            "filename": filename, "contentType": contentType, "size": size,
            "uploadUrl": f"{self.base_url}/storage/{token}", "assetUrl": f"{self.uploads_url}/{path}",
            "headers": [{"key": "x-goog-meta-linear", "value": "yes"}]}}

    # -- state, shared by both sides ----------------------------------------------

    def add_team(self, team_id: str, key: str, name: str) -> None:
        self.teams[team_id] = {"id": team_id, "key": key, "name": name}

    def add_issue(self, team: str, title: str, description: str = "", issue_id: str | None = None) -> dict[str, Any]:
        issue_id = issue_id or str(uuid.uuid4())
        number = next(self._numbers)
        key = self.teams[team]["key"]
        issue = {"id": issue_id, "identifier": f"{key}-{number}", "title": title, "description": description,
                 "teamId": team, "url": f"https://linear.app/{ORG}/issue/{key}-{number}", "createdAt": now_iso()}
        self.issues[issue_id] = issue
        return issue

    def add_user(self, user_id: str, name: str) -> dict[str, Any]:
        user = {"id": user_id, "name": name, "displayName": name.lower().replace(" ", ""),
                "email": f"{user_id}@acme.test", "active": True, "isMe": False}
        self.users.setdefault(user_id, user)
        return self.users[user_id]

    def add_comment(self, issue: str, body: str, user: str, parent: str | None = None, bot: bool = False) -> Comment:
        comment = Comment(str(uuid.uuid4()), issue, body, user, parent, bot)
        self.all_comments[comment.id] = comment
        return comment

    def upload_from_person(self, name: str, data: bytes, kind: str) -> str:
        path = f"{ORG}/{uuid.uuid4()}/{uuid.uuid4()}"
        self.assets[path] = (name, data, kind)
        return f"{self.uploads_url}/{path}"

    def _linked_asset(self, body: str) -> tuple[str | None, bytes | None]:
        for match in re.finditer(r"\]\(" + re.escape(self.uploads_url) + r"/([^)\s]+)\)", body):
            if match.group(1) in self.assets:
                name, data, _ = self.assets[match.group(1)]
                return name, data
        return None, None

    def _record_edit(self, message_id: str, body: str) -> None:
        for message in self.sent:
            if message.id == message_id:
                message.edits.append(body)

    def _user_json(self, user_id: str) -> dict[str, Any] | None:
        return self.bot if user_id == self.bot["id"] else self.users.get(user_id)

    def _issue_json(self, issue: dict[str, Any]) -> dict[str, Any]:
        return {**{k: v for k, v in issue.items() if k != "reactions"}, "team": self.teams[issue["teamId"]]}

    def _comment_json(self, comment: Comment) -> dict[str, Any]:
        issue = self.issues[comment.issue]
        return {"id": comment.id, "body": comment.body, "createdAt": comment.created_at,
                "url": f"{issue['url']}#comment-{comment.id[:8]}", "user": self._user_json(comment.user),
                "issue": self._issue_json(issue), "issueId": comment.issue, "parentId": comment.parent,
                "botActor": {"id": "app-1", "type": "oauthClient", "name": "Zapier"} if comment.bot else None}

    # -- the person's side: what Linear would deliver to the webhook -------------------

    def comment_event(self, comment: Comment) -> dict[str, Any]:
        """The Comment create webhook payload for `comment`, as Linear sends it."""
        issue = self.issues[comment.issue]
        user = self._user_json(comment.user) or {"id": comment.user, "name": "?"}
        data = {"id": comment.id, "createdAt": comment.created_at, "updatedAt": comment.created_at,
                "body": comment.body, "issueId": comment.issue, "parentId": comment.parent, "userId": comment.user,
                "reactionData": [], "botActor": self._comment_json(comment)["botActor"],
                "user": {"id": user["id"], "name": user["name"], "email": user.get("email"),
                         "url": f"https://linear.app/{ORG}/profiles/{user.get('displayName')}"},
                "issue": {"id": issue["id"], "title": issue["title"], "teamId": issue["teamId"],
                          "team": self.teams[issue["teamId"]], "identifier": issue["identifier"],
                          "url": issue["url"]}}
        actor = ({"id": "app-1", "type": "OauthClient", "name": "Zapier"} if comment.bot
                 else {"id": user["id"], "type": "user", "name": user["name"]})
        return self.envelope("Comment", data, actor)

    def issue_event(self, issue: dict[str, Any], creator: str) -> dict[str, Any]:
        user = self._user_json(creator) or {"id": creator, "name": "?"}
        data = {**self._issue_json(issue), "creatorId": creator, "creator": {"id": creator, "name": user["name"]},
                "updatedAt": issue["createdAt"], "priority": 0, "labelIds": []}
        return self.envelope("Issue", data, {"id": creator, "type": "user", "name": user["name"]})

    def envelope(self, kind: str, data: dict[str, Any], actor: dict[str, Any], action: str = "create",
                 age: float = 0.0) -> dict[str, Any]:
        return {"action": action, "type": kind, "actor": actor, "createdAt": data.get("createdAt", now_iso()),
                "data": data, "url": data.get("url", ""), "organizationId": "org-1",
                "webhookTimestamp": int((time.time() - age) * 1000), "webhookId": "wh-1"}


def _matches(comment: Comment, issues: dict[str, dict[str, Any]], where: dict[str, Any]) -> bool:
    created = where.get("createdAt") or {}
    if "gt" in created and not comment.created_at > created["gt"]:
        return False
    if "gte" in created and not comment.created_at >= created["gte"]:
        return False
    team = ((where.get("issue") or {}).get("team") or {}).get("id") or {}
    if "eq" in team and issues[comment.issue]["teamId"] != team["eq"]:
        return False
    return all(_matches(comment, issues, sub) for sub in where.get("and") or [])


def _errors(status: int, message: str, code: str) -> web.Response:
    error = {"message": message, "extensions": {"code": code, "type": code.lower().replace("_", " "),
                                                "userError": True, "userPresentableMessage": message}}
    return web.json_response({"errors": [error]}, status=status)


async def post_webhook(url: str, kind: str, body: bytes, signature: str | None) -> int:
    """Deliver one webhook as Linear does; returns the HTTP status the receiver answered."""
    headers = {"Content-Type": "application/json; charset=utf-8", "Linear-Event": kind,
               "Linear-Delivery": str(uuid.uuid4()), "User-Agent": "Linear-Webhook"}
    if signature is not None:
        headers["Linear-Signature"] = signature
    async with aiohttp.ClientSession() as session:
        async with session.post(url, data=body, headers=headers) as response:
            return response.status


def encode(payload: Any) -> bytes:
    return json.dumps(payload).encode()
