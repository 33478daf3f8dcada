"""Image stores, step 2 of 2: every row is in a store (annotation.0004 put them there); UIDs are unique per
store, no longer globally; the share log is append-only."""

import django.db.models.deletion
from django.db import migrations, models

from config.append_only import install_append_only, uninstall_append_only

TABLES = ["imaging_studyshare"]


class Migration(migrations.Migration):
    dependencies = [
        ("imaging", "0002_image_stores"),
        ("annotation", "0004_project_image_store"),
    ]

    operations = [
        migrations.AlterField(
            model_name="study",
            name="store",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT, related_name="studies", to="imaging.imagestore"
            ),
        ),
        migrations.AlterField(
            model_name="series",
            name="store",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT, related_name="+", to="imaging.imagestore"
            ),
        ),
        migrations.AlterField(
            model_name="instance",
            name="store",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT, related_name="+", to="imaging.imagestore"
            ),
        ),
        migrations.AddConstraint(
            model_name="study",
            constraint=models.UniqueConstraint(fields=("store", "study_instance_uid"), name="unique_study_per_store"),
        ),
        migrations.AddConstraint(
            model_name="series",
            constraint=models.UniqueConstraint(
                fields=("store", "series_instance_uid"), name="unique_series_per_store"
            ),
        ),
        migrations.AddConstraint(
            model_name="instance",
            constraint=models.UniqueConstraint(fields=("store", "sop_instance_uid"), name="unique_instance_per_store"),
        ),
        migrations.RunPython(
            lambda apps, schema_editor: install_append_only(schema_editor, TABLES),
            lambda apps, schema_editor: uninstall_append_only(schema_editor, TABLES),
        ),
    ]
