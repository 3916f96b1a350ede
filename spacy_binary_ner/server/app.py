"""The teach server's ASGI app: the page and the JSON API it uses.

| Method, path | Body / query | Returns |
| --- | --- | --- |
| `GET /` | `?session=NAME` | the page |
| `GET /api/questions` | `session`, `n` (1-50) | `{"tasks": [...], "finished"}`: the session's open questions |
| `POST /api/answers` | `session`, `next`; `{"answers": [..]}` | `{"stored", "duplicates", "ids", "tasks", ...}` |
| `GET /api/history` | `session`, `n` | `{"answers": [...]}`: the session's latest answers, newest first |
| `POST /api/correction` | `session`; `{"task": question}` | `{"task": ...}`: the question as a correction |
| `GET /api/progress` | `session` | counts, accept rate, loss, F1, questions per number of answers |
| `GET /api/queue` | | the buffer, open questions per session, leases (takes nothing) |
| `GET /api/info` | | dataset, labels, view, settings |

The view is "teach" (one span a question), "textcat" (`teach --task
textcat`: a text and one label, or with `--choice` its `options` and the
model's `accept`; `exclusive` in the info says whether a choice is of one
label), "correct" (`correct` and
`silver-to-gold`: whole texts, each question's `complete` naming the labels
it is answered for), or "review" (`review`: a `Reviewer` in the teacher's
place, its questions tasks with the versions the sessions gave, its answers
`{"_task_hash", "version"}`). `/api/correction` turns a teach question into such a
correction (the model's entities plus its span).

A request with a token set needs `Authorization: Bearer TOKEN` (or
`?token=TOKEN`). `finished`: no question will come beyond these; fewer
tasks than asked for and `finished` false means "ask again": the queue is
being refilled. Every error is a 4xx JSON `{"error": message}`, and nothing
of a bad request is stored; an answer must be to a question handed out in
this dataset, as asked (its `_task_hash`, text and spans, and the `_sig` it
came with), else a 422 says why, unless the server allows new tasks. Every
response is standard JSON (a number JSON cannot carry is sent as null). If
the learning engine has stopped, answers are still stored (their reply
carries `error`), and a request for questions gets a 503 with the reason
once none is left; while the server stops, answers get a 503.

Handlers never do work on the event loop: checking an answer (which
tokenises its text), storing it and taking questions run in worker threads.
"""

import contextlib
import hmac
import json
import re
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable, Dict, List, Optional, Tuple

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..records import nan_to_null
from .worker import BadAnswer, EngineError, Teacher

STATIC = Path(__file__).parent / "static"
MAX_BODY = 1_000_000
MAX_ANSWERS = 100
_SESSION = re.compile(r"^[\w.@-]{1,100}$")


class SafeJSONResponse(JSONResponse):
    """A JSON response that is always standard JSON: NaN and Infinity, which
    `json` would write as bare words no other parser reads, become null."""

    def render(self, content: Any) -> bytes:
        try:
            text = json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        except ValueError:
            text = json.dumps(nan_to_null(content), ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        return text.encode("utf-8")


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not standard JSON")


def _error(status: int, message: str) -> JSONResponse:
    return SafeJSONResponse({"error": message}, status_code=status)


def _session(request: Request) -> str:
    session = request.query_params.get("session", "default")
    if not _SESSION.match(session):
        raise HTTPException(400, "`session` must be 1-100 letters, digits or . _ @ -")
    return session


def _int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    value = request.query_params.get(name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise HTTPException(400, f"`{name}` must be an integer, not {value[:20]!r}") from None
    if not low <= number <= high:
        raise HTTPException(400, f"`{name}` must be between {low} and {high}, not {number}")
    return number


def create_app(teacher: Teacher, *, token: Optional[str] = None, on_shutdown: Optional[Callable] = None) -> Starlette:
    """The ASGI app serving a `Teacher`.

    teacher (Teacher): The engine (or a `review.Reviewer`, which answers the
        same calls).
    token (Optional[str]): If set, every request must carry it.
    on_shutdown (Optional[Callable]): Called when the server stops (e.g.
        `teacher.close`).
    RETURNS (Starlette): The app.
    """

    async def page(request: Request) -> Response:
        name = "review.html" if teacher.view == "review" else "index.html"
        return FileResponse(STATIC / name, headers={"Cache-Control": "no-store"})

    async def info(request: Request) -> Response:
        return SafeJSONResponse(
            {
                "dataset": teacher.dataset,
                "labels": teacher.labels,
                "view": teacher.view,
                "exclusive": getattr(teacher, "exclusive", None),
                "learns": teacher.learns,
                "feed_overlap": teacher.feed_overlap,
                "answers_per_question": teacher.book.answers_per_question,
                "batch_size": teacher.batch_size,
                "eval": teacher.has_eval,
                "allow_new_tasks": teacher.allow_new_tasks,
            }
        )

    async def questions(request: Request) -> Response:
        session = _session(request)
        n = _int_param(request, "n", 5, 1, 50)

        def take() -> Tuple[List[Dict[str, Any]], bool]:
            return teacher.questions(session, n), teacher.finished(session)

        tasks, finished = await run_in_threadpool(take)
        if not tasks and teacher.engine_failure is not None:
            return _error(503, f"no questions: {teacher.error}")
        return SafeJSONResponse({"tasks": tasks, "finished": finished})

    async def answers(request: Request) -> Response:
        session = _session(request)
        n_next = _int_param(request, "next", 0, 0, 50)
        data = await _json_body(request, '{"answers": [...]}')
        if not isinstance(data, dict) or not isinstance(data.get("answers"), list) or not data["answers"]:
            return _error(400, 'send {"answers": [task, ...]}, each task with `answer` set')
        if len(data["answers"]) > MAX_ANSWERS:
            return _error(413, f"at most {MAX_ANSWERS} answers a request, not {len(data['answers'])}")
        if not teacher.accepting:
            return _error(503, "the server is stopping and takes no more answers; send them again after its restart")
        try:
            out = await run_in_threadpool(_store, teacher, session, data["answers"], n_next)
        except BadAnswer as err:
            return _error(422, f"{err}; nothing of this request was stored")
        return SafeJSONResponse(out)

    async def correction(request: Request) -> Response:
        _session(request)
        data = await _json_body(request, '{"task": question}')
        if not isinstance(data, dict) or not isinstance(data.get("task"), dict):
            return _error(400, 'send {"task": question}, the question as handed out')
        try:
            task = await run_in_threadpool(teacher.correction, data["task"])
        except BadAnswer as err:
            return _error(422, str(err))
        except EngineError as err:
            return _error(503, str(err))
        return SafeJSONResponse({"task": task})

    async def history(request: Request) -> Response:
        session = _session(request)
        n = _int_param(request, "n", 10, 1, 1000)
        return SafeJSONResponse({"answers": await run_in_threadpool(teacher.history, session, n)})

    async def progress(request: Request) -> Response:
        session = _session(request)
        return SafeJSONResponse(await run_in_threadpool(teacher.progress, session))

    async def queue(request: Request) -> Response:
        return SafeJSONResponse(await run_in_threadpool(teacher.queue_state))

    async def http_error(request: Request, exc: HTTPException) -> Response:
        return _error(exc.status_code, str(exc.detail))

    routes = [
        Route("/", page),
        Route("/api/info", info),
        Route("/api/questions", questions),
        Route("/api/answers", answers, methods=["POST"]),
        Route("/api/correction", correction, methods=["POST"]),
        Route("/api/history", history),
        Route("/api/progress", progress),
        Route("/api/queue", queue),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        if on_shutdown is not None:
            await run_in_threadpool(on_shutdown)

    app = Starlette(routes=routes, exception_handlers={HTTPException: http_error}, lifespan=lifespan)
    if token:
        return _TokenGuard(app, token)  # type: ignore[return-value]
    return app


async def _json_body(request: Request, shape: str) -> Any:
    """A request's body as standard JSON; raises an HTTP 413 or 400 saying
    what to send (`shape`)."""
    length = request.headers.get("content-length")
    too_long = f"the body is over {MAX_BODY} bytes: send fewer answers at a time"
    if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
        raise HTTPException(413, too_long)
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise HTTPException(413, too_long)
    try:
        return json.loads(body, parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError) as err:
        raise HTTPException(400, f"the body is not valid JSON ({err}); send {shape}") from None


def _store(teacher: Teacher, session: str, answers: List[Any], n_next: int) -> Dict[str, Any]:
    """Check every answer, store them, and take the session's next questions
    (in a worker thread). Raises `BadAnswer` naming the first bad answer."""
    items = []
    for i, item in enumerate(answers):
        try:
            items.append(teacher.validate(item))
        except BadAnswer as err:
            raise BadAnswer(f"answer {i}: {err}") from None
    results = teacher.answer(session, items)
    out: Dict[str, Any] = {
        "stored": sum(new for _, new in results),
        "duplicates": sum(not new for _, new in results),
        "ids": [row_id for row_id, _ in results],
    }
    if n_next:
        out["tasks"] = teacher.questions(session, n_next)
        out["finished"] = teacher.finished(session)
    if teacher.engine_failure is not None:
        out["error"] = teacher.error
    return out


class _TokenGuard:
    """ASGI middleware: every HTTP request needs the token."""

    def __init__(self, app: Starlette, token: str) -> None:
        self.app = app
        self.token = token.encode("utf8")
        self.state = app.state

    async def __call__(self, scope: Dict[str, Any], receive: Callable[[], Awaitable[Any]], send: Callable) -> None:
        if scope["type"] == "http" and not self._allowed(scope):
            response = _error(401, "this server needs a token: send `Authorization: Bearer TOKEN` or add ?token=TOKEN")
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _allowed(self, scope: Dict[str, Any]) -> bool:
        given: List[bytes] = []
        for name, value in scope.get("headers", []):
            if name == b"authorization" and value.startswith(b"Bearer "):
                given.append(value[7:])
        for part in scope.get("query_string", b"").split(b"&"):
            if part.startswith(b"token="):
                from urllib.parse import unquote_to_bytes

                given.append(unquote_to_bytes(part[6:]))
        return any(hmac.compare_digest(g, self.token) for g in given)
