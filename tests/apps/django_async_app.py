"""For tests/python/test_django_sync_pool.py: a one-file Django site served through
``get_asgi_application()`` (``application``) or Channels' ``ProtocolTypeRouter``
(``routed``), whose views report which thread ran their synchronous parts.

- ``GET /thread``: the names of the threads two ``sync_to_async`` calls of the request ran
  on (one request's thread-sensitive calls share one thread), and of the thread the
  middleware's hooks ran on.
- ``GET /meet?n=N``: its sync part waits at a barrier for N requests at once (each request
  needs a thread of its own, or the barrier times out and the view answers 500).
- ``GET /later`` answers at once and leaves a task that calls ``sync_to_async`` after the
  response; ``GET /later-result`` says how that call went.
"""

import asyncio
import os
import threading

import django
from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.urls import path
from django.utils.deprecation import MiddlewareMixin

settings.configure(
    DEBUG=False,
    SECRET_KEY="test-only",
    ALLOWED_HOSTS=["*"],
    ROOT_URLCONF=__name__,
    MIDDLEWARE=[f"{__name__}.NoteThread"],
    LOGGING={},
)
django.setup()

from asgiref.sync import sync_to_async  # noqa: E402


class NoteThread(MiddlewareMixin):
    """Under ASGI Django runs this hook through sync_to_async (a thread-sensitive call)."""

    def process_request(self, request):
        request.hook_thread = threading.current_thread().name


def _name() -> str:
    return threading.current_thread().name


async def thread(request):
    first = await sync_to_async(_name)()
    second = await sync_to_async(_name)()
    return JsonResponse({"first": first, "second": second, "hook": request.hook_thread})


_BARRIERS: dict[int, threading.Barrier] = {}


async def meet(request):
    n = int(request.GET.get("n", "2"))
    barrier = _BARRIERS.setdefault(n, threading.Barrier(n, timeout=10))
    await sync_to_async(barrier.wait)()
    return HttpResponse("met")


_LATER: dict[str, str] = {}


async def _after():
    await asyncio.sleep(0.2)
    try:
        _LATER["result"] = "ok " + await sync_to_async(_name)()
    except Exception as exc:  # noqa: BLE001 - reported to the test
        _LATER["result"] = f"{type(exc).__name__}: {exc}"


_TASKS = set()


async def later(request):
    task = asyncio.get_running_loop().create_task(_after())
    _TASKS.add(task)
    task.add_done_callback(_TASKS.discard)
    return HttpResponse("later")


async def later_result(request):
    return HttpResponse(_LATER.get("result", "pending"))


async def pid(request):
    return HttpResponse(str(os.getpid()))


urlpatterns = [
    path("thread", thread),
    path("meet", meet),
    path("later", later),
    path("later-result", later_result),
    path("pid", pid),
]

from django.core.asgi import get_asgi_application  # noqa: E402

application = get_asgi_application()

from channels.routing import ProtocolTypeRouter  # noqa: E402

routed = ProtocolTypeRouter({"http": application})
