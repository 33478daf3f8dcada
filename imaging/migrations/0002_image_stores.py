"""Image stores, step 1 of 2: the stores and the share log, and a nullable store on every index row.

annotation.0004 then gives every project its store and moves each study into the store of the project it
belonged to (copying it for every further project it was linked to); imaging.0003 makes the store required
and the UIDs unique per store instead of globally."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("imaging", "0001_initial"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="ImageStore",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                (
                    "kind",
                    models.CharField(
                        choices=[
                            ("project", "A project's store"),
                            ("platform", "Stored by an administrator outside any project"),
                        ],
                        default="project",
                        max_length=16,
                    ),
                ),
                (
                    "name",
                    models.CharField(help_text="For people; the project's slug when it was created", max_length=128),
                ),
                ("created_at", models.DateTimeField(auto_now_add=True)),
            ],
            options={
                "ordering": ["pk"],
                "constraints": [
                    models.UniqueConstraint(
                        condition=models.Q(("kind", "platform")), fields=("kind",), name="one_platform_store"
                    )
                ],
            },
        ),
        migrations.AddField(
            model_name="study",
            name="store",
            field=models.ForeignKey(
                null=True, on_delete=django.db.models.deletion.PROTECT, related_name="studies", to="imaging.imagestore"
            ),
        ),
        migrations.AddField(
            model_name="series",
            name="store",
            field=models.ForeignKey(
                null=True, on_delete=django.db.models.deletion.PROTECT, related_name="+", to="imaging.imagestore"
            ),
        ),
        migrations.AddField(
            model_name="instance",
            name="store",
            field=models.ForeignKey(
                null=True, on_delete=django.db.models.deletion.PROTECT, related_name="+", to="imaging.imagestore"
            ),
        ),
        migrations.AlterField(
            model_name="study",
            name="study_instance_uid",
            field=models.CharField(db_index=True, max_length=64),
        ),
        migrations.AlterField(
            model_name="series",
            name="series_instance_uid",
            field=models.CharField(db_index=True, max_length=64),
        ),
        migrations.AlterField(
            model_name="instance",
            name="sop_instance_uid",
            field=models.CharField(db_index=True, max_length=64),
        ),
        migrations.AlterField(
            model_name="instance",
            name="sha256",
            field=models.CharField(blank=True, db_index=True, max_length=64),
        ),
        migrations.CreateModel(
            name="StudyShare",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("study_instance_uid", models.CharField(max_length=64)),
                ("instances", models.PositiveIntegerField(default=0)),
                ("reason", models.CharField(blank=True, max_length=500)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                (
                    "copy",
                    models.ForeignKey(
                        db_constraint=False,
                        null=True,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="+",
                        to="imaging.study",
                    ),
                ),
                (
                    "from_store",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="shares_out",
                        to="imaging.imagestore",
                    ),
                ),
                (
                    "to_store",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="shares_in",
                        to="imaging.imagestore",
                    ),
                ),
                (
                    "shared_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={"ordering": ["-created_at", "-pk"]},
        ),
    ]
