"""Series.quality_summary: what the quality checks need of the instances counted so far, so that one more file
updates its series without reading the others (issue 19). Existing series start empty and are summarised from
all their instances the next time a file is added to them."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('imaging', '0003_store_required'),
    ]

    operations = [
        migrations.AddField(
            model_name='series',
            name='quality_summary',
            field=models.JSONField(blank=True, default=dict, editable=False),
        ),
    ]
