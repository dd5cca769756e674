import asyncio
import hashlib
import time
from pathlib import Path

from django.db.models import F
from django.http import (
    FileResponse,
    HttpResponse,
    HttpResponseRedirect,
    JsonResponse,
    StreamingHttpResponse,
)
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from .models import Choice, Question

FILES_DIR = Path(__file__).resolve().parent / "files"
SAMPLE_FILE = FILES_DIR / "sample.txt"

# Number of rows in the index page table; the page doubles as a benchmark.
INDEX_TABLE_ROWS = 50

# request.META keys reported by /echo-meta (in addition to every HTTP_* key).
ECHO_META_KEYS = (
    "REQUEST_METHOD",
    "PATH_INFO",
    "SCRIPT_NAME",
    "QUERY_STRING",
    "SERVER_NAME",
    "SERVER_PORT",
    "REMOTE_ADDR",
    "CONTENT_TYPE",
    "CONTENT_LENGTH",
    "wsgi.url_scheme",
)

UPLOAD_READ_SIZE = 64 * 1024


@require_GET
def index(request):
    latest = Question.objects.filter(pub_date__lte=timezone.now()).order_by("-pub_date")[:5]
    rows = [
        {"n": i, "square": i * i, "hex": f"{i:#06x}", "even": i % 2 == 0}
        for i in range(INDEX_TABLE_ROWS)
    ]
    return render(request, "polls/index.html", {"latest_questions": latest, "rows": rows})


@require_GET
def detail(request, question_id):
    question = get_object_or_404(Question, pk=question_id)
    return render(request, "polls/detail.html", {"question": question})


@require_POST
def vote(request, question_id):
    question = get_object_or_404(Question, pk=question_id)
    try:
        choice = question.choice_set.get(pk=request.POST["choice"])
    except (KeyError, ValueError, Choice.DoesNotExist):
        context = {"question": question, "error_message": "Pick one of the choices."}
        return render(request, "polls/detail.html", context, status=400)
    # Atomic increment in the database, safe with several worker processes.
    Choice.objects.filter(pk=choice.pk).update(votes=F("votes") + 1)
    return HttpResponseRedirect(reverse("polls:results", args=(question.id,)))


@require_GET
def results(request, question_id):
    question = get_object_or_404(Question, pk=question_id)
    return render(request, "polls/results.html", {"question": question})


def plain(request):
    return HttpResponse("Hello from Django\n", content_type="text/plain")


async def plain_async(request):
    """``/plain`` as a coroutine view: under an ASGI server (``mysite.asgi``) it runs on the
    event loop itself, while the site's middleware (``MiddlewareMixin`` classes) still hands
    each of its hooks to the request's sync thread; bench/run.py's ASGI cells measure it.
    Under WSGI, Django runs it in a new event loop."""
    return HttpResponse("Hello from Django\n", content_type="text/plain")


def json_view(request):
    return JsonResponse({"message": "Hello from Django", "server": "bourbon", "items": [1, 2, 3]})


def orm(request):
    texts = list(Question.objects.order_by("id").values_list("question_text", flat=True)[:10])
    return JsonResponse({"count": len(texts), "questions": texts})


def download(request):
    return FileResponse(open(SAMPLE_FILE, "rb"), as_attachment=True, filename="sample.txt")


def stream(request):
    def lines():
        for i in range(10):
            yield f"line {i}\n"

    return StreamingHttpResponse(lines(), content_type="text/plain")


def events(request):
    def event_source():
        for i in range(5):
            if i:
                time.sleep(0.2)
            yield f"data: {i}\n\n"

    response = StreamingHttpResponse(event_source(), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response


def _digest_upload(request):
    """Hash the upload without holding it in memory.

    Multipart requests use the ``file`` field; any other body is hashed as-is.
    Returns ``None`` if a multipart request has no ``file`` field.
    """
    digest = hashlib.sha256()
    size = 0
    if request.content_type == "multipart/form-data":
        upload = request.FILES.get("file")
        if upload is None:
            return None
        chunks = upload.chunks()
    else:
        chunks = iter(lambda: request.read(UPLOAD_READ_SIZE), b"")
    for chunk in chunks:
        digest.update(chunk)
        size += len(chunk)
    return {"size": size, "sha256": digest.hexdigest()}


@require_http_methods(["GET", "POST"])
def upload(request):
    if request.method == "GET":
        return render(request, "polls/upload.html")
    result = _digest_upload(request)
    if result is None:
        return JsonResponse({"error": "missing 'file' field"}, status=400)
    return JsonResponse(result)


@csrf_exempt
@require_POST
def upload_raw(request):
    """Like POST /upload, but without CSRF so scripts and tests can call it."""
    result = _digest_upload(request)
    if result is None:
        return JsonResponse({"error": "missing 'file' field"}, status=400)
    return JsonResponse(result)


def echo_meta(request):
    """Selected WSGI environ keys; absent keys are reported as null."""
    meta = {key: request.META.get(key) for key in ECHO_META_KEYS}
    meta.update({k: v for k, v in request.META.items() if k.startswith("HTTP_")})
    return JsonResponse(meta)


async def async_view(request):
    """An ``async def`` view: Django awaits it on the server's event loop under ASGI, and runs it
    in a loop of its own per request under WSGI. The ORM call goes through Django's async API."""
    await asyncio.sleep(0)
    count = await Question.objects.acount()
    interface = "asgi" if hasattr(request, "scope") else "wsgi"
    return JsonResponse({"view": "async", "interface": interface, "questions": count})
