"""Data migration: create the DEMO-ONLY superuser admin/admin.

This exists so the example admin at /admin/ can be tried immediately. Never
ship a migration like this in a real project.
"""

from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.db import migrations

DEMO_USERNAME = "admin"
DEMO_PASSWORD = "admin"  # demo only


def create_demo_superuser(apps, schema_editor):
    app_label, model_name = settings.AUTH_USER_MODEL.split(".")
    User = apps.get_model(app_label, model_name)
    if User.objects.filter(username=DEMO_USERNAME).exists():
        return
    User.objects.create(
        username=DEMO_USERNAME,
        email="admin@example.com",
        password=make_password(DEMO_PASSWORD),
        is_staff=True,
        is_superuser=True,
        is_active=True,
    )


def delete_demo_superuser(apps, schema_editor):
    app_label, model_name = settings.AUTH_USER_MODEL.split(".")
    User = apps.get_model(app_label, model_name)
    User.objects.filter(username=DEMO_USERNAME).delete()


class Migration(migrations.Migration):
    dependencies = (
        ("polls", "0002_sample_questions"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    )

    operations = (migrations.RunPython(create_demo_superuser, delete_demo_superuser),)
