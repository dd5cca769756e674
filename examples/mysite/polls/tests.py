import hashlib
import itertools
import re
import time
import unittest

from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client, TestCase, override_settings
from django.urls import reverse

from .models import Choice, Question
from .views import ECHO_META_KEYS, SAMPLE_FILE

# The manifest storage used in settings needs `collectstatic` output, which the
# test run should not depend on. Plain storage keeps {% static %} working.
PLAIN_STATIC_STORAGES = {
    **settings.STORAGES,
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

CSRF_INPUT_RE = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


def csrf_token_from(response):
    match = CSRF_INPUT_RE.search(response.content.decode())
    assert match, "no csrfmiddlewaretoken in the page"
    return match.group(1)


@override_settings(STORAGES=PLAIN_STATIC_STORAGES)
class PageTests(TestCase):
    def test_index_lists_questions_and_benchmark_table(self):
        response = self.client.get("/")
        self.assertEqual(response.status_code, 200)
        self.assertTemplateUsed(response, "polls/base.html")
        self.assertContains(response, 'href="/static/polls/style.css"')
        latest = Question.objects.order_by("-pub_date").first()
        self.assertContains(response, reverse("polls:detail", args=(latest.id,)))
        self.assertEqual(len(response.context["latest_questions"]), 5)
        body = response.content.decode()
        self.assertEqual(len(re.findall(r'<tr class="(?:odd|even)">', body)), 50)

    def test_detail_has_csrf_form(self):
        question = Question.objects.first()
        response = self.client.get(f"/{question.id}/")
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, question.question_text)
        self.assertContains(response, f'action="/{question.id}/vote/"')
        self.assertContains(response, 'name="csrfmiddlewaretoken"')
        self.assertContains(response, 'type="radio"', count=3)

    def test_unknown_question_is_404(self):
        self.assertEqual(self.client.get("/999999/").status_code, 404)
        self.assertEqual(self.client.get("/999999/results/").status_code, 404)

    def test_results_show_counts(self):
        question = Question.objects.first()
        choice = question.choice_set.first()
        Choice.objects.filter(pk=choice.pk).update(votes=7)
        response = self.client.get(f"/{question.id}/results/")
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, "7 votes")
        self.assertContains(response, choice.choice_text)


@override_settings(STORAGES=PLAIN_STATIC_STORAGES)
class VoteTests(TestCase):
    def setUp(self):
        self.client = Client(enforce_csrf_checks=True)
        self.question = Question.objects.order_by("id").first()
        self.choice = self.question.choice_set.order_by("id").first()

    def test_vote_without_csrf_token_is_rejected(self):
        self.client.get(f"/{self.question.id}/")  # sets the CSRF cookie
        response = self.client.post(f"/{self.question.id}/vote/", {"choice": self.choice.id})
        self.assertEqual(response.status_code, 403)
        self.choice.refresh_from_db()
        self.assertEqual(self.choice.votes, 0)

    def test_vote_with_csrf_token_redirects_to_results(self):
        token = csrf_token_from(self.client.get(f"/{self.question.id}/"))
        response = self.client.post(
            f"/{self.question.id}/vote/",
            {"choice": self.choice.id, "csrfmiddlewaretoken": token},
        )
        self.assertEqual(response.status_code, 302)
        self.assertEqual(response["Location"], f"/{self.question.id}/results/")
        self.choice.refresh_from_db()
        self.assertEqual(self.choice.votes, 1)

        results = self.client.get(response["Location"])
        self.assertContains(results, "1 vote<")

    def test_vote_with_missing_choice_rerenders_form(self):
        token = csrf_token_from(self.client.get(f"/{self.question.id}/"))
        response = self.client.post(f"/{self.question.id}/vote/", {"csrfmiddlewaretoken": token})
        self.assertContains(response, "Pick one of the choices.", status_code=400)

    def test_vote_requires_post(self):
        response = self.client.get(f"/{self.question.id}/vote/")
        self.assertEqual(response.status_code, 405)


@override_settings(STORAGES=PLAIN_STATIC_STORAGES)
class SimpleEndpointTests(TestCase):
    def test_plain(self):
        response = self.client.get("/plain")
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response["Content-Type"], "text/plain")
        self.assertEqual(response.content, b"Hello from Django\n")

    def test_plain_async(self):
        response = self.client.get("/plain-async")
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response["Content-Type"], "text/plain")
        self.assertEqual(response.content, b"Hello from Django\n")

    async def test_plain_async_on_the_async_stack(self):
        response = await self.async_client.get("/plain-async")
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response.content, b"Hello from Django\n")

    def test_json(self):
        response = self.client.get("/json")
        self.assertEqual(response["Content-Type"], "application/json")
        self.assertEqual(response.json()["message"], "Hello from Django")

    def test_orm_reads_ten_questions(self):
        response = self.client.get("/orm")
        self.assertEqual(response.status_code, 200)
        data = response.json()
        expected = list(
            Question.objects.order_by("id").values_list("question_text", flat=True)[:10]
        )
        self.assertEqual(data["count"], 10)
        self.assertEqual(data["questions"], expected)

    def test_sample_data_has_three_choices_each(self):
        self.assertGreaterEqual(Question.objects.count(), 10)
        for question in Question.objects.all():
            self.assertEqual(question.choice_set.count(), 3)

    def test_download(self):
        response = self.client.get("/download")
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response["Content-Disposition"], 'attachment; filename="sample.txt"')
        expected = SAMPLE_FILE.read_bytes()
        self.assertEqual(len(expected), 100 * 1024)
        self.assertEqual(response["Content-Length"], str(len(expected)))
        self.assertEqual(b"".join(response.streaming_content), expected)
        response.close()

    def test_stream(self):
        response = self.client.get("/stream")
        self.assertTrue(response.streaming)
        self.assertTrue(response["Content-Type"].startswith("text/plain"))
        body = b"".join(response.streaming_content).decode()
        self.assertEqual(body, "".join(f"line {i}\n" for i in range(10)))

    def test_events_arrive_one_by_one(self):
        response = self.client.get("/events")
        self.assertTrue(response.streaming)
        self.assertEqual(response["Content-Type"], "text/event-stream")
        chunks, stamps = [], []
        for chunk in response.streaming_content:
            chunks.append(chunk)
            stamps.append(time.monotonic())
        self.assertEqual(chunks, [f"data: {i}\n\n".encode() for i in range(5)])
        gaps = [later - earlier for earlier, later in itertools.pairwise(stamps)]
        self.assertTrue(all(gap >= 0.15 for gap in gaps), gaps)

    def test_echo_meta(self):
        response = self.client.get(
            "/echo-meta?a=1&b=two",
            headers={"X-Custom-Thing": "hello", "Accept": "application/json"},
        )
        data = response.json()
        for key in ECHO_META_KEYS:
            self.assertIn(key, data)
        self.assertEqual(data["REQUEST_METHOD"], "GET")
        self.assertEqual(data["PATH_INFO"], "/echo-meta")
        self.assertEqual(data["QUERY_STRING"], "a=1&b=two")
        self.assertEqual(data["wsgi.url_scheme"], "http")
        self.assertEqual(data["HTTP_X_CUSTOM_THING"], "hello")
        self.assertEqual(data["HTTP_ACCEPT"], "application/json")


@override_settings(STORAGES=PLAIN_STATIC_STORAGES)
class UploadTests(TestCase):
    payload = bytes(range(256)) * 4096 + b"tail"  # 1 MiB + 4 bytes

    def expected(self, data):
        return {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}

    def test_upload_form(self):
        response = self.client.get("/upload")
        self.assertContains(response, 'enctype="multipart/form-data"')
        self.assertContains(response, 'name="csrfmiddlewaretoken"')

    def test_upload_with_csrf(self):
        client = Client(enforce_csrf_checks=True)
        token = csrf_token_from(client.get("/upload"))
        upload = SimpleUploadedFile("blob.bin", self.payload)
        response = client.post("/upload", {"file": upload, "csrfmiddlewaretoken": token})
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response.json(), self.expected(self.payload))

    def test_upload_without_csrf_is_rejected(self):
        client = Client(enforce_csrf_checks=True)
        upload = SimpleUploadedFile("blob.bin", self.payload)
        self.assertEqual(client.post("/upload", {"file": upload}).status_code, 403)

    def test_raw_multipart(self):
        client = Client(enforce_csrf_checks=True)
        upload = SimpleUploadedFile("blob.bin", self.payload)
        response = client.post("/upload/raw", {"file": upload})
        self.assertEqual(response.json(), self.expected(self.payload))

    def test_raw_body(self):
        client = Client(enforce_csrf_checks=True)
        data = self.payload * 3  # larger than DATA_UPLOAD_MAX_MEMORY_SIZE
        response = client.post("/upload/raw", data=data, content_type="application/octet-stream")
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response.json(), self.expected(data))

    def test_raw_empty_body(self):
        response = self.client.post(
            "/upload/raw", data=b"", content_type="application/octet-stream"
        )
        self.assertEqual(response.json(), self.expected(b""))

    def test_raw_multipart_without_file_field(self):
        response = self.client.post("/upload/raw", {"other": "value"})
        self.assertEqual(response.status_code, 400)

    def test_raw_requires_post(self):
        self.assertEqual(self.client.get("/upload/raw").status_code, 405)


@override_settings(STORAGES=PLAIN_STATIC_STORAGES)
class AdminTests(TestCase):
    def test_login_page(self):
        response = self.client.get("/admin/login/")
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, 'name="username"')

    def test_demo_superuser_can_log_in(self):
        client = Client(enforce_csrf_checks=True)
        token = csrf_token_from(client.get("/admin/login/"))
        response = client.post(
            "/admin/login/?next=/admin/",
            {"username": "admin", "password": "admin", "csrfmiddlewaretoken": token},
        )
        self.assertEqual(response.status_code, 302)
        self.assertEqual(response["Location"], "/admin/")
        response = client.get("/admin/polls/question/")
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, "Which WSGI server do you use?")


@unittest.skipUnless(
    (settings.STATIC_ROOT / "staticfiles.json").exists(),
    "run `manage.py collectstatic --noinput` to test the collected files",
)
class CollectedStaticTests(TestCase):
    """With the real manifest storage: pages link hashed names that collectstatic wrote
    (bourbon serves them with `--static django`; see tests/python/test_django.py)."""

    def test_hashed_stylesheet_is_collected(self):
        page = self.client.get("/")
        match = re.search(r'href="/static/(polls/style\.[0-9a-f]{12}\.css)"', page.content.decode())
        self.assertIsNotNone(match, "stylesheet URL is not hashed")
        collected = settings.STATIC_ROOT / match.group(1)
        self.assertTrue(collected.is_file(), collected)
        source = settings.BASE_DIR / "polls" / "static" / "polls" / "style.css"
        self.assertEqual(collected.read_bytes(), source.read_bytes())
