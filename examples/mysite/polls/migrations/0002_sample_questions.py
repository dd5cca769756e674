"""Data migration: seed sample questions so /, /orm and the vote flow have data."""

import datetime

from django.db import migrations
from django.utils import timezone

SAMPLE_POLLS = [
    ("Which WSGI server do you use?", ["bourbon", "gunicorn", "uWSGI"]),
    ("Favourite Python version?", ["3.11", "3.12", "3.13"]),
    ("Tabs or spaces?", ["Tabs", "Spaces", "Whatever the formatter says"]),
    ("Best database for a demo?", ["SQLite", "PostgreSQL", "A CSV file"]),
    ("How many workers per core?", ["One", "Two", "It depends"]),
    ("Preferred HTTP version?", ["HTTP/1.1", "HTTP/2", "HTTP/3"]),
    ("Sync or async views?", ["Sync", "Async", "Both"]),
    ("Where do static files live?", ["WhiteNoise", "A CDN", "nginx"]),
    ("Favourite template engine?", ["Django templates", "Jinja2", "f-strings"]),
    ("How do you deploy?", ["Containers", "systemd units", "scp and hope"]),
    ("Morning drink?", ["Coffee", "Tea", "Bourbon (later)"]),
    ("Biggest perf win?", ["Caching", "Better queries", "A faster server"]),
]


def create_samples(apps, schema_editor):
    Question = apps.get_model("polls", "Question")
    Choice = apps.get_model("polls", "Choice")
    now = timezone.now()
    for index, (text, choices) in enumerate(SAMPLE_POLLS):
        question = Question.objects.create(
            question_text=text,
            # Oldest first, newest one hour before migration time.
            pub_date=now - datetime.timedelta(hours=len(SAMPLE_POLLS) - index),
        )
        Choice.objects.bulk_create(
            [Choice(question=question, choice_text=choice) for choice in choices]
        )


def delete_samples(apps, schema_editor):
    Question = apps.get_model("polls", "Question")
    Question.objects.filter(
        question_text__in=[text for text, _ in SAMPLE_POLLS]
    ).delete()


class Migration(migrations.Migration):
    dependencies = (("polls", "0001_initial"),)

    operations = (migrations.RunPython(create_samples, delete_samples),)
