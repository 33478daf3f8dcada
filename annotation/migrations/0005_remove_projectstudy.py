"""A project's studies are its store's studies (annotation.0004 moved them): the link table goes, and every
project has a store."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("annotation", "0004_project_image_store"),
        ("imaging", "0003_store_required"),
    ]

    operations = [
        migrations.AlterField(
            model_name="project",
            name="image_store",
            field=models.OneToOneField(
                editable=False,
                on_delete=django.db.models.deletion.PROTECT, related_name="project", to="imaging.imagestore"
            ),
        ),
        migrations.DeleteModel(name="ProjectStudy"),
    ]
