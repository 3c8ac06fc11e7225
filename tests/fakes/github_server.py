"""A fake GitHub: the REST endpoints the GitHub channel calls, and signed webhooks a person's actions send.

The REST side (aiohttp on 127.0.0.1) answers in GitHub's wire format: `GET /user`,
issues, issue comments, edits, reactions, with GitHub's error bodies. It records
what the bot wrote as `PlatformMessage`s. The person side builds the webhook
payloads GitHub would deliver (issue_comment, issues, pull_request,
pull_request_review_comment) and posts them signed with X-Hub-Signature-256.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from tests.channels.harness import PlatformMessage

VALID_REACTIONS = {"+1", "-1", "laugh", "confused", "heart", "hooray", "rocket", "eyes"}
MAX_BODY = 65536


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def user(login: str, bot: bool = False) -> dict[str, Any]:
    return {"login": login, "id": abs(hash(login)) % 10**8, "node_id": f"U_{login}", "type": "Bot" if bot else "User",
            "site_admin": False, "html_url": f"https://github.com/{login}"}


@dataclass
class Issue:
    number: int
    title: str
    body: str
    author: str
    pull: bool = False
    reactions: list[str] = field(default_factory=list)


@dataclass
class Comment:
    id: int
    repo: str
    number: int
    body: str
    author: str
    review: bool = False
    reactions: list[str] = field(default_factory=list)
    created_at: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))


class GitHubFake:
    """REST API on 127.0.0.1 plus the person's side; `base_url` is what GITHUB_API_URL should be."""

    def __init__(self, token: str, bot_login: str, repos: tuple[str, ...]) -> None:
        self.token = token
        self.bot_login = bot_login
        self.issues: dict[str, dict[int, Issue]] = {repo: {} for repo in repos}
        self.comments: dict[int, Comment] = {}
        self.sent: list[PlatformMessage] = []  # what the bot wrote (comments and issues), oldest first
        self.requests: list[tuple[str, str]] = []  # (method, path) the server answered
        self.down = False  # answer every call with 503
        self.rate_limited = False  # answer every call with GitHub's 403 "API rate limit exceeded"
        self._ids = itertools.count(2_000_000_001)
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- server lifecycle ------------------------------------------------------

    async def start(self) -> None:
        app = web.Application(middlewares=[self._gate])
        r = app.router
        r.add_get("/user", self._get_user)
        r.add_post("/repos/{owner}/{repo}/issues", self._create_issue)
        r.add_patch("/repos/{owner}/{repo}/issues/{number:\\d+}", self._edit_issue)
        r.add_post("/repos/{owner}/{repo}/issues/{number:\\d+}/comments", self._create_comment)
        r.add_get("/repos/{owner}/{repo}/issues/comments", self._list_comments)
        r.add_patch("/repos/{owner}/{repo}/issues/comments/{id:\\d+}", self._edit_comment)
        r.add_patch("/repos/{owner}/{repo}/pulls/comments/{id:\\d+}", self._edit_comment)
        r.add_post("/repos/{owner}/{repo}/issues/{number:\\d+}/reactions", self._react_issue)
        r.add_post("/repos/{owner}/{repo}/issues/comments/{id:\\d+}/reactions", self._react_comment)
        r.add_post("/repos/{owner}/{repo}/pulls/comments/{id:\\d+}/reactions", self._react_comment)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)  # port 0 the first time; the same on restart
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def restart(self) -> None:
        """Close every connection and listen again on the same port (state is kept)."""
        await self.stop()
        await self.start()

    # -- REST ------------------------------------------------------------------

    @web.middleware
    async def _gate(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append((request.method, request.path))
        if self.down:
            return _error(503, "Service Unavailable")
        if request.headers.get("Authorization") not in (f"Bearer {self.token}", f"token {self.token}"):
            return _error(401, "Bad credentials")
        if self.rate_limited:
            return _error(403, "API rate limit exceeded for user ID 1.",
                          headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": "1700000000"})
        repo = f"{request.match_info.get('owner')}/{request.match_info.get('repo')}"
        if "owner" in request.match_info and repo not in self.issues:
            return _error(404, "Not Found")
        return await handler(request)  # type: ignore[no-any-return]

    async def _get_user(self, request: web.Request) -> web.Response:
        return web.json_response(user(self.bot_login))

    async def _create_issue(self, request: web.Request) -> web.Response:
        repo, data = _repo(request), await request.json()
        if not isinstance(data.get("title"), str) or not data["title"]:
            return _error(422, "Validation Failed")
        if len(data.get("body") or "") > MAX_BODY:
            return _too_long()
        issue = self.open_issue(repo, data["title"], data.get("body") or "", self.bot_login)
        self.sent.append(PlatformMessage(f"issue-{issue.number}", repo, issue.body, str(issue.number), raw=data))
        return web.json_response(self._issue_json(repo, issue), status=201)

    async def _edit_issue(self, request: web.Request) -> web.Response:
        repo, data = _repo(request), await request.json()
        issue = self.issues[repo].get(int(request.match_info["number"]))
        if issue is None:
            return _error(404, "Not Found")
        issue.body = data.get("body", issue.body)
        self._record_edit(f"issue-{issue.number}", issue.body)
        return web.json_response(self._issue_json(repo, issue))

    async def _create_comment(self, request: web.Request) -> web.Response:
        repo, data = _repo(request), await request.json()
        number = int(request.match_info["number"])
        if number not in self.issues[repo]:
            return _error(404, "Not Found")
        body = data.get("body")
        if not isinstance(body, str) or not body:
            return _error(422, "Validation Failed")
        if len(body) > MAX_BODY:
            return _too_long()
        comment = self._add_comment(repo, number, body, self.bot_login)
        self.sent.append(PlatformMessage(str(comment.id), repo, body, str(number), raw=data))
        return web.json_response(self._comment_json(comment), status=201)

    async def _list_comments(self, request: web.Request) -> web.Response:
        """GET issues/comments as GitHub answers it: `since` keeps comments updated at or after it."""
        repo, query = _repo(request), request.query
        since = query.get("since", "")
        found = sorted((c for c in self.comments.values() if c.repo == repo and not c.review
                        and c.created_at >= since), key=lambda c: (c.created_at, c.id))
        if query.get("direction") == "desc":
            found.reverse()
        found = found[: int(query.get("per_page", "30"))]
        return web.json_response([self._comment_json(c, bot=c.author.endswith("[bot]")) for c in found])

    async def _edit_comment(self, request: web.Request) -> web.Response:
        data = await request.json()
        comment = self.comments.get(int(request.match_info["id"]))
        if comment is None or comment.repo != _repo(request) or comment.review != ("/pulls/" in request.path):
            return _error(404, "Not Found")
        comment.body = data.get("body", comment.body)
        self._record_edit(str(comment.id), comment.body)
        return web.json_response(self._comment_json(comment))

    async def _react_issue(self, request: web.Request) -> web.Response:
        issue = self.issues[_repo(request)].get(int(request.match_info["number"]))
        if issue is None:
            return _error(404, "Not Found")
        return await self._react(request, issue.reactions)

    async def _react_comment(self, request: web.Request) -> web.Response:
        comment = self.comments.get(int(request.match_info["id"]))
        if comment is None or comment.repo != _repo(request) or comment.review != ("/pulls/" in request.path):
            return _error(404, "Not Found")
        return await self._react(request, comment.reactions)

    async def _react(self, request: web.Request, reactions: list[str]) -> web.Response:
        content = (await request.json()).get("content")
        if content not in VALID_REACTIONS:
            return _error(422, "Validation Failed")
        existed = content in reactions
        if not existed:
            reactions.append(content)
        body = {"id": next(self._ids), "node_id": "REA_x", "user": user(self.bot_login), "content": content,
                "created_at": "2025-01-01T00:00:00Z"}
        return web.json_response(body, status=200 if existed else 201)

    def _record_edit(self, message_id: str, body: str) -> None:
        for message in self.sent:
            if message.id == message_id:
                message.edits.append(body)

    # -- state, shared by both sides ----------------------------------------------

    def open_issue(self, repo: str, title: str, body: str, author: str, pull: bool = False) -> Issue:
        numbers = self.issues[repo]
        issue = Issue(max(numbers, default=0) + 1, title, body, author, pull)
        numbers[issue.number] = issue
        return issue

    def ensure_issue(self, repo: str, number: int) -> Issue:
        issue = self.issues[repo].get(number)
        if issue is None:
            issue = self.issues[repo][number] = Issue(number, f"Issue {number}", "", "octocat")
        return issue

    def _add_comment(self, repo: str, number: int, body: str, author: str, review: bool = False) -> Comment:
        comment = Comment(next(self._ids), repo, number, body, author, review)
        self.comments[comment.id] = comment
        return comment

    def _issue_json(self, repo: str, issue: Issue, bot: bool = False) -> dict[str, Any]:
        kind = "pull" if issue.pull else "issues"
        return {"id": 1_000_000 + issue.number, "node_id": f"I_{issue.number}", "number": issue.number,
                "title": issue.title, "body": issue.body, "state": "open", "user": user(issue.author, bot),
                "html_url": f"https://github.com/{repo}/{kind}/{issue.number}",
                "url": f"{self.base_url}/repos/{repo}/issues/{issue.number}", "comments": 0, "labels": []}

    def _comment_json(self, comment: Comment, bot: bool = False) -> dict[str, Any]:
        anchor = "discussion_r" if comment.review else "issuecomment-"
        return {"id": comment.id, "node_id": f"IC_{comment.id}", "body": comment.body, "user": user(comment.author, bot),
                "html_url": f"https://github.com/{comment.repo}/issues/{comment.number}#{anchor}{comment.id}",
                "issue_url": f"{self.base_url}/repos/{comment.repo}/issues/{comment.number}",
                "created_at": comment.created_at, "updated_at": comment.created_at,
                "author_association": "OWNER"}

    def _repo_json(self, repo: str) -> dict[str, Any]:
        owner, name = repo.split("/")
        return {"id": abs(hash(repo)) % 10**8, "name": name, "full_name": repo, "private": False,
                "owner": user(owner), "html_url": f"https://github.com/{repo}"}

    # -- the person's side: what GitHub would deliver to the webhook -------------------

    def comment_event(self, repo: str, number: int, body: str, login: str, bot: bool = False) -> tuple[str, dict[str, Any]]:
        """A person (or bot) comments on issue/PR `number`: returns (comment id, issue_comment payload)."""
        issue = self.ensure_issue(repo, number)
        comment = self._add_comment(repo, number, body, login)
        issue_json = self._issue_json(repo, issue)
        if issue.pull:
            issue_json["pull_request"] = {"url": f"{self.base_url}/repos/{repo}/pulls/{number}"}
        payload = {"action": "created", "issue": issue_json, "comment": self._comment_json(comment, bot),
                   "repository": self._repo_json(repo), "sender": user(login, bot)}
        return str(comment.id), payload

    def opened_event(self, repo: str, title: str, body: str, login: str, pull: bool = False) -> tuple[int, dict[str, Any]]:
        """A person opens an issue (or a pull request): returns (number, issues/pull_request payload)."""
        issue = self.open_issue(repo, title, body, login, pull)
        key = "pull_request" if pull else "issue"
        item = self._issue_json(repo, issue)
        if pull:
            item.update({"head": {"ref": "feature"}, "base": {"ref": "main"}, "draft": False})
        return issue.number, {"action": "opened", key: item, "repository": self._repo_json(repo), "sender": user(login)}

    def review_comment_event(self, repo: str, number: int, path: str, body: str, login: str) -> tuple[str, dict[str, Any]]:
        """A person comments on a line of PR `number`'s diff: returns (comment id, payload)."""
        issue = self.ensure_issue(repo, number)
        issue.pull = True
        comment = self._add_comment(repo, number, body, login, review=True)
        comment_json = self._comment_json(comment) | {"path": path, "line": 3, "diff_hunk": "@@ -1,3 +1,3 @@"}
        payload = {"action": "created", "comment": comment_json, "pull_request": self._issue_json(repo, issue),
                   "repository": self._repo_json(repo), "sender": user(login)}
        return str(comment.id), payload

    def reactions_on(self, message_id: str) -> list[str]:
        """Reactions on a comment id, `review-<id>` or `issue-<n>` (any repo)."""
        kind, _, number = message_id.rpartition("-")
        if kind == "issue":
            return [r for issues in self.issues.values() for i in issues.values() if i.number == int(number)
                    for r in i.reactions]
        comment = self.comments.get(int(number))
        return list(comment.reactions) if comment else []


async def post_webhook(url: str, event: str, body: bytes, signature: str | None) -> int:
    """Deliver one webhook as GitHub does; returns the HTTP status the receiver answered."""
    headers = {"Content-Type": "application/json", "X-GitHub-Event": event, "X-GitHub-Delivery": str(uuid.uuid4()),
               "User-Agent": "GitHub-Hookshot/fake"}
    if signature is not None:
        headers["X-Hub-Signature-256"] = signature
    async with aiohttp.ClientSession() as session:
        async with session.post(url, data=body, headers=headers) as response:
            return response.status


def encode(payload: Any) -> bytes:
    return json.dumps(payload).encode()


def _repo(request: web.Request) -> str:
    return f"{request.match_info['owner']}/{request.match_info['repo']}"


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"message": message, "documentation_url": "https://docs.github.com/rest"},
                             status=status, headers=headers)


def _too_long() -> web.Response:
    body = {"message": "Validation Failed", "documentation_url": "https://docs.github.com/rest",
            "errors": [{"resource": "IssueComment", "code": "custom", "field": "body",
                        "message": f"body is too long (maximum is {MAX_BODY} characters)"}]}
    return web.json_response(body, status=422)
